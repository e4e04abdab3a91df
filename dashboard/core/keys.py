"""Secret keys the cockpit makes for itself, once, under the data folder's ``runs/`` (beside the session
secret): created with mode 0600 by the first process that needs one (an atomic link, so two processes
starting together agree on one key), read by every later one."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PSEUDONYM_KEY = ".pseudonym_key"  # the key behind the keyed pseudonyms of personal keys (query/security.py)


def own_key(data_path: Path, name: str) -> str:
    """The hex key ``runs/<name>``, made on first use."""
    path = data_path / "runs" / name
    with contextlib.suppress(FileNotFoundError):
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_hex(32))
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # fails when another process made it first: theirs is the key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text(encoding="ascii").strip()
