"""Privacy requests (PIPL): erase a person from every file under the data folder, keep them out of later
snapshots, write a person's copy, and remove rows past their retention; each one audited.

Every rewrite is crash-safe file by file (a temp file beside it, fsync, ``os.replace``): a kill -9 leaves each
file old or new, and a rerun finishes the work. What an erasure is about is kept in a pending plan under
``runs/privacy/pending/`` until it is done, so a rerun still finds records an earlier run already removed
from the tables it resolves the person with. Source systems and the demo's raw inputs are never rewritten.
"""

from dashboard.ops.privacy.erase import Proof, forget
from dashboard.ops.privacy.files import FileChange
from dashboard.ops.privacy.person import (
    KINDS,
    PENDING,
    Identifier,
    Person,
    PrivacyInputError,
    find_person,
    parse_identifier,
    pseudonym,
)
from dashboard.ops.privacy.personal_copy import ExportResult, export_person
from dashboard.ops.privacy.retention import RetentionResult, apply_retention, retention_preview

__all__ = [
    "KINDS",
    "PENDING",
    "ExportResult",
    "FileChange",
    "Identifier",
    "Person",
    "PrivacyInputError",
    "Proof",
    "RetentionResult",
    "apply_retention",
    "export_person",
    "find_person",
    "forget",
    "parse_identifier",
    "pseudonym",
    "retention_preview",
]
