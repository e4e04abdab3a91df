"""The gate: Great Expectations suites (expectations/<entity>.json, overridden per source) run on
each standardized entity. GX is imported lazily: it costs seconds, and only refresh needs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.core.errors import ConfigError

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
BLOCKING = "critical"
_NULLS = {"nan", "NaT", "None", "<NA>"}


@dataclass
class Outcome:
    """One expectation's result on one entity of one snapshot."""

    suite: str
    expectation: str
    column: str | None
    blocking: bool
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    samples: list[str] = field(default_factory=list)
    observed: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" on column '{self.column}'" if self.column else ""
        if self.unexpected_count is not None:
            pct = f" ({self.unexpected_percent:.1f}%)" if self.unexpected_percent is not None else ""
            detail = f"{self.unexpected_count} rows failed{pct}"
            if "mostly" in self.kwargs:
                detail += f", at most {100 - 100 * float(self.kwargs['mostly']):.0f}% allowed"
        else:
            detail = f"observed {self.observed}"
        samples = f"; e.g. {', '.join(self.samples[:3])}" if self.samples else ""
        return f"'{self.suite}' {self.expectation}{where}: {detail}{samples}"


def suite_path(entity: str, source: str | None = None) -> Path:
    return EXPECTATIONS_DIR / (f"{source}.{entity}.json" if source else f"{entity}.json")


def _identity(exp: dict[str, Any]) -> tuple[str, str | None]:
    return exp["type"], exp.get("kwargs", {}).get("column")


def load_suite_dict(entity: str, source: str) -> dict[str, Any]:
    """The entity's suite, with the source's own file (if any) replacing or adding expectations."""
    base = _read(suite_path(entity))
    override_path = suite_path(entity, source)
    if override_path.is_file():
        override = _read(override_path)
        replaced = {_identity(e) for e in override["expectations"]}
        base["expectations"] = [e for e in base["expectations"] if _identity(e) not in replaced]
        base["expectations"] += override["expectations"]
        base["name"] = f"{source}.{entity}"
    return base


def _read(path: Path) -> dict[str, Any]:
    try:
        d: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the expectation suite: {e}") from None
    d.pop("id", None)
    for exp in d.get("expectations", []):
        exp.pop("id", None)
    return d


@cache
def _batch_definition() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX md5-fingerprints every in-memory batch below this size (a batch marker we never read):
    # it was 2/3 of validation time on 1M-row entities. Module constant, pinned GX version.
    pandas_execution_engine.HASH_THRESHOLD = 0

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("cockpit")
    asset = source.add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole")


def validate(frame: pl.DataFrame, entity: str, source: str) -> list[Outcome]:
    from great_expectations.core import ExpectationSuite

    suite_dict = load_suite_dict(entity, source)
    try:
        suite = ExpectationSuite(**suite_dict)
    except Exception as e:  # GX's own schema errors: name the suite file
        raise ConfigError(f"expectation suite for {source}.{entity} is invalid: {e}") from e
    columns = sorted({c for e in suite_dict["expectations"] if (c := e.get("kwargs", {}).get("column"))})
    present = [c for c in columns if c in frame.columns]
    # Only the columns the suite reads go to pandas: the conversion is the costly part.
    pdf = frame.select(present or frame.columns[:1]).to_pandas()
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": pdf})
    result = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5})
    outcomes = []
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        exc = (r.exception_info or {}).get("exception_message") if r.exception_info else None
        outcomes.append(
            Outcome(
                suite=suite_dict["name"],
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                blocking=str(getattr(cfg, "severity", BLOCKING)) in (BLOCKING, "FailureSeverity.CRITICAL"),
                success=bool(r.success),
                element_count=res.get("element_count"),
                unexpected_count=res.get("unexpected_count"),
                unexpected_percent=res.get("unexpected_percent"),
                samples=[str(v) for v in res.get("partial_unexpected_list") or [] if str(v) not in _NULLS],
                observed=str(exc or res.get("observed_value")),
                kwargs={k: v for k, v in cfg.kwargs.items() if k not in ("column", "batch_id")},
            )
        )
    return outcomes
