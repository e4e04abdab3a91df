"""The GX suites: every file loads as a GX suite; per-source files replace and add expectations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.core.entities import ENTITIES
from dashboard.pipeline.validate import EXPECTATIONS_DIR, load_suite_dict, suite_path, validate


@pytest.mark.parametrize("path", sorted(EXPECTATIONS_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_suite_file_is_a_valid_gx_suite(path: Path) -> None:
    from great_expectations.core import ExpectationSuite

    d = json.loads(path.read_text(encoding="utf-8"))
    suite = ExpectationSuite(**d)
    assert suite.expectations
    entity = path.stem.split(".")[-1]
    assert entity in ENTITIES, f"{path.name}: not named after an entity"
    assert all(e["severity"] in ("critical", "warning") for e in d["expectations"])


def test_every_entity_has_a_suite() -> None:
    assert all(suite_path(e).is_file() for e in ENTITIES)


def test_source_suite_replaces_and_adds() -> None:
    base = load_suite_dict("leads", "crm")
    merged = load_suite_dict("leads", "purchased_leads")
    phone = [
        e for e in merged["expectations"] if e["type"].endswith("match_regex") and e["kwargs"]["column"] == "phone"
    ]
    assert [e["kwargs"]["mostly"] for e in phone] == [0.8]
    assert len(merged["expectations"]) == len(base["expectations"]) + 1  # the phone not-null rule is added
    assert merged["name"] == "purchased_leads.leads"


def test_looser_source_rule_changes_the_verdict() -> None:
    import polars as pl

    df = pl.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(10)],
            "created_at": [None] * 10,
            "channel": ["x"] * 10,
            "phone": ["13800138000"] * 8 + ["bad", "bad"],
            "email": [None] * 10,
        }
    ).with_columns(pl.col("created_at").cast(pl.Datetime("us")).fill_null(pl.datetime(2026, 3, 1)))

    def phone_ok(source: str) -> bool:
        return next(
            o.success for o in validate(df, "leads", source) if o.column == "phone" and "regex" in o.expectation
        )

    assert not phone_ok("crm")  # 80% valid < 90% base rule
    assert phone_ok("purchased_leads")
