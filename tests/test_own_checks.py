"""The gate's own checks (dashboard/pipeline/own_checks.py) against Great Expectations: on every entity the
demo sources and the messy fixture company hand to the gate, and on frames made to hit the edges, the
outcomes (verdict, blocking, counts, percentage, samples, observed value, kwargs and their order, the
results' order) are GX's own, so quarantine, verdicts and row problems are what they were with GX."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.pipeline import own_checks
from dashboard.pipeline import refresh as refresh_mod
from dashboard.pipeline import validate as validate_mod
from dashboard.pipeline.validate import Outcome, apply_thresholds, load_suite_dict, validate
from tests.fixture_data import write_company

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 6, 1, 12, 0)


def _with_gx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(own_checks, "supported", lambda suite, frame: False)


def _shown(outcomes: list[Outcome]) -> list[tuple[Outcome, list[str]]]:
    return [(o, list(o.kwargs)) for o in outcomes]


def _gate_inputs(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every (frame, entity, source, quality) a real refresh hands to the gate."""
    seen: list[tuple[Any, ...]] = []
    real = refresh_mod.validate

    def record(frame: pl.DataFrame, entity: str, source: str, quality: Any, now: Any, settings: Any) -> Any:
        seen.append((frame, entity, source, quality))
        return real(frame, entity, source, quality, now, settings)

    with monkeypatch.context() as m:
        m.setattr(refresh_mod, "validate", record)
        refresh_mod.refresh(settings)
    return seen


def _compare(inputs: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(checks compared, checks failed)."""
    own = {}
    for frame, entity, source, quality in inputs:
        suite = apply_thresholds(load_suite_dict(entity, source), entity, quality)
        assert own_checks.supported(suite, frame), f"{source}.{entity} went to GX"
        own[(source, entity)] = validate(frame, entity, source, quality, NOW)
    with monkeypatch.context() as m:
        _with_gx(m)
        for frame, entity, source, quality in inputs:
            gx = validate(frame, entity, source, quality, NOW)
            assert _shown(own[(source, entity)]) == _shown(gx), f"{source}.{entity}"
    checked = [o for outcomes in own.values() for o in outcomes]
    return len(checked), sum(1 for o in checked if not o.success)


def test_the_demo_sources_get_gx_outcomes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.demo import generate

    shutil.copy(ROOT / "cockpit.toml", tmp_path / "cockpit.toml")
    settings = load_settings(tmp_path / "cockpit.toml")
    generate(settings.data_path, "small", 42)
    inputs = _gate_inputs(settings, monkeypatch)
    assert {source for _, _, source, _ in inputs} == set(settings.source_names)
    checked, _failed = _compare(inputs, monkeypatch)
    assert checked >= 3 * len(inputs)


def test_the_messy_company_gets_gx_outcomes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(write_company(tmp_path / "company"))
    bad = "Lead ID,Created,Source,Mobile\n" + "".join(  # repeated ids, blank ids, numbers that are no phones
        f"CRM-{i % 7 or ''},2026-03-01,SEM,{'call me' if i % 3 else '138 0013 8000'} {i}\n" for i in range(40)
    )
    (settings.base_dir / "imports" / "crm" / "leads.csv").write_text(bad, encoding="utf-8")
    inputs = _gate_inputs(settings, monkeypatch)
    assert len(inputs) >= 5
    _checked, failed = _compare(inputs, monkeypatch)
    assert failed > 0  # failed checks, with their samples, were compared too


def _suite(*expectations: dict[str, Any]) -> dict[str, Any]:
    return {"name": "edge.leads", "meta": {}, "expectations": list(expectations)}


def _exp(kind: str, severity: str = "critical", **kwargs: Any) -> dict[str, Any]:
    return {"type": f"expect_{kind}", "kwargs": kwargs, "meta": {}, "severity": severity}


EDGE = pl.DataFrame(
    {
        "s": ["a", "b", "b", None, "13800138000\n", "１3800138000", "13800138000", "", "x@y.cn", "b"],
        "i": [1, 2, 2, None, 5, -3, 7, 8, 9, 10],
        "n": [1, 2, 3, 4, 5, 6, 7, 8, 9, 9],
        "f": [0.5, float("nan"), None, -1.0, 2.0, 2.0, 3.5, 1e16, 0.0, -0.25],
        "flag": [True, None, False, True, True, False, None, True, True, True],
        "at": (pl.Series([1, 1, None, 3, 4, 5, 6, 7, 8, 8]) * 86_400_000_000).cast(pl.Datetime("us")),
    }
)

SUITE = _suite(
    _exp("table_row_count_to_be_between", min_value=1, max_value=9),
    _exp("column_values_to_not_be_null", column="s", mostly=0.9),
    _exp("column_values_to_be_unique", "warning", column="s"),
    _exp("column_values_to_match_regex", column="s", regex=r"^1[3-9]\d{9}$", mostly=0.2),
    _exp("column_values_to_match_regex", "warning", column="s", regex=r"^[a-z]+(\.[a-z]+)*$"),
    _exp("column_values_to_be_in_set", column="s", value_set=["a", "b"], mostly=0.5),
    _exp("column_values_to_not_be_in_set", "info", column="s", value_set=["b"]),
    _exp("column_values_to_be_between", column="i", min_value=0, max_value=8, mostly=0.7),
    _exp("column_values_to_be_between", column="i", min_value=1, strict_min=True),
    _exp("column_values_to_be_unique", column="i"),
    _exp("column_values_to_be_unique", column="n", mostly=0.5),
    _exp("column_values_to_be_in_set", column="n", value_set=[1, 2, 9]),
    _exp("column_values_to_not_be_null", column="f", mostly=0.5),
    _exp("column_values_to_be_between", column="f", min_value=0, max_value=2.0, strict_max=True, mostly=0.1),
    _exp("column_values_to_not_be_null", column="i"),
    _exp("column_values_to_be_in_set", column="flag", value_set=[True], mostly=0.9),
    _exp("column_values_to_be_unique", column="at"),
    _exp("column_values_to_not_be_null", column="at", mostly=0.95),
    _exp("table_row_count_to_be_between", "warning", max_value=10, strict_max=True),
)


@pytest.mark.parametrize("rows", [10, 0, 1], ids=["ten", "empty", "one"])
def test_edge_frames_get_gx_outcomes(rows: int) -> None:
    frame = EDGE.head(rows)
    assert own_checks.supported(SUITE, frame)
    own = [validate_mod._own_outcome(SUITE["name"], r) for r in own_checks.check(SUITE, frame)]
    gx = validate_mod._gx_outcomes(frame, SUITE, "edge", "leads", None)
    assert _shown(own) == _shown(gx)
    if rows == 10:
        phone = next(o for o in own if o.kwargs.get("regex", "").startswith("^1"))
        # Python's re, as GX gets from pandas: "$" matches before a final newline, "１" is no ASCII digit
        assert (phone.unexpected_count, phone.samples) == (7, ["a", "b", "b", "１3800138000", ""])


@pytest.mark.parametrize(
    "suite",
    [
        _suite(_exp("column_values_to_not_be_null", column="missing")),
        _suite(_exp("column_values_to_match_regex", column="i", regex="1")),
        _suite(_exp("column_values_to_be_in_set", column="s", value_set=["a", 1])),
        _suite(_exp("column_values_to_be_between", column="s", min_value="a")),
        _suite(_exp("column_values_to_be_between", column="i", min_value=5, max_value=1)),
        _suite(_exp("column_values_to_be_null", column="s")),
        _suite(_exp("column_values_to_not_be_null", column="s", row_condition='i > 1')),
        _suite(_exp("column_values_to_not_be_null", column="s", mostly=1.5)),
        _suite(_exp("column_values_to_match_regex", column="s", regex="(")),
        _suite(_exp("column_values_to_not_be_null", "urgent", column="s")),
    ],
    ids=["missing-column", "regex-on-int", "mixed-set", "text-bounds", "bounds-swapped", "other-kind",
         "row-condition", "bad-mostly", "bad-regex", "bad-severity"],
)  # fmt: skip
def test_anything_else_goes_to_gx(suite: dict[str, Any]) -> None:
    assert not own_checks.supported(suite, EDGE)


def test_a_bad_suite_is_still_named_by_gx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.core.errors import ConfigError

    monkeypatch.setattr(
        validate_mod, "load_suite_dict", lambda e, s: _suite(_exp("column_values_to_not_be_null", column="s", mostly=2))
    )
    with pytest.raises(ConfigError, match=r"edge\.leads"):
        validate(EDGE, "leads", "edge", now=NOW)
