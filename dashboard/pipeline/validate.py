"""The gate: Great Expectations suites (expectations/<entity>.json, overridden per source) run on
each standardized entity. GX is imported lazily: it costs seconds, and only refresh needs it.

A source's ``[sources.quality]`` in cockpit.toml sets the common thresholds without GX JSON: the
share of empty values per column (the not-null checks' ``mostly``), the share of filled values that
may fail a column's other checks, the minimum rows, and the allowed dates: every date column is
checked against ``not_before``, ``not_after`` and a horizon (``future_days`` after the refresh), a
warning up to ``max_out_of_range_share`` of its dates and blocking above it.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.core.config import Settings, SourceQualityConfig
from dashboard.core.entities import ENTITIES
from dashboard.core.errors import ConfigError
from dashboard.core.store import Store

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
BLOCKING = "critical"
_NULLS = {"nan", "NaT", "None", "<NA>"}
NOT_NULL = "expect_column_values_to_not_be_null"
ROW_COUNT = "expect_table_row_count_to_be_between"
BETWEEN = "expect_column_values_to_be_between"
NO_HORIZON = ("due_date",)  # planned dates: they lie ahead by nature


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
    note: str | None = None  # what a cockpit check (the date range) looked for, in words

    @property
    def entity(self) -> str:
        return self.suite.rsplit(".", 1)[-1]

    def describe(self) -> str:
        where = f" on column '{self.column}'" if self.column else ""
        if self.unexpected_count is not None:
            pct = f" ({self.unexpected_percent:.1f}%)" if self.unexpected_percent is not None else ""
            detail = f"{self.unexpected_count} rows failed{pct}"
            if "mostly" in self.kwargs:
                detail += f", at most {percent(1 - float(self.kwargs['mostly']))}% allowed"
        else:
            detail = f"observed {self.observed}"
        note = f" ({self.note})" if self.note else ""
        samples = f"; e.g. {', '.join(self.samples[:3])}" if self.samples else ""
        return f"'{self.suite}' {self.expectation}{where}: {detail}{note}{samples}"


def percent(share: float) -> str:
    """0.02 → '2', 0.005 → '0.5'."""
    return f"{100 * share:.1f}".removesuffix(".0")


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


_warming: list[threading.Thread] = []  # the thread warm_up started (at most one per process)
# Sources read at once (pipeline/refresh.py) meet here one at a time: GX's context and its batch definition
# are shared, and GX's pandas work holds the GIL anyway (the other source's polars work goes on meanwhile).
_gx = threading.Lock()


def warm_up() -> None:
    """GX imported and its batch definition made in a thread of its own, started when a source is about to be
    read: the import costs ~1.9 CPU-s and seconds of wall, and overlaps the source's read and standardize (which
    run in polars' and DuckDB's own threads) instead of holding up its gate. Once per process."""
    with _gx:
        if not _warming:
            _warming.append(threading.Thread(target=_batch_definition, name="cockpit-gx-import", daemon=True))
            _warming[0].start()


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


def share_for(shares: dict[str, float], entity: str, column: str) -> float | None:
    """A column's share from ``max_null_share`` / ``max_invalid_share``: "entity.column" before "column"."""
    return shares.get(f"{entity}.{column}", shares.get(column))


def min_rows_for(quality: SourceQualityConfig, entity: str) -> int | None:
    if isinstance(quality.min_rows, dict):
        return quality.min_rows.get(entity)
    return quality.min_rows


def apply_thresholds(suite: dict[str, Any], entity: str, quality: SourceQualityConfig) -> dict[str, Any]:
    """The suite with a source's cockpit.toml thresholds: they set the ``mostly`` (and minimum rows) of the
    checks the suite has, and add a blocking not-null or row-count check where it has none."""
    suite = copy.deepcopy(suite)
    expectations: list[dict[str, Any]] = suite["expectations"]
    seen_null: set[str] = set()
    seen_rows = False
    min_rows = min_rows_for(quality, entity)
    for exp in expectations:
        kwargs = exp.setdefault("kwargs", {})
        column = kwargs.get("column")
        if exp["type"] == ROW_COUNT:
            seen_rows = True
            if min_rows is not None:
                kwargs["min_value"] = min_rows
        elif column and exp["type"] == NOT_NULL:
            seen_null.add(column)
            share = share_for(quality.max_null_share, entity, column)
            if share is not None:
                kwargs["mostly"] = round(1 - share, 10)
        elif column:
            share = share_for(quality.max_invalid_share, entity, column)
            if share is not None:
                kwargs["mostly"] = round(1 - share, 10)
    if min_rows is not None and not seen_rows:
        expectations.append({"type": ROW_COUNT, "kwargs": {"min_value": min_rows}, "meta": {}, "severity": BLOCKING})
    for column in ENTITIES[entity].column_names:
        share = share_for(quality.max_null_share, entity, column)
        if share is not None and column not in seen_null:
            kwargs = {"column": column, "mostly": round(1 - share, 10)}
            expectations.append({"type": NOT_NULL, "kwargs": kwargs, "meta": {}, "severity": BLOCKING})
    return suite


def _day(value: datetime) -> str:
    return value.strftime("%Y-%m-%d") if value.time() == time() else value.strftime("%Y-%m-%d %H:%M:%S")


def date_checks(
    frame: pl.DataFrame | pl.LazyFrame, entity: str, suite: str, quality: SourceQualityConfig, now: datetime
) -> list[Outcome]:
    """Every date column against the allowed range: before ``not_before``, after ``not_after``, or more than
    ``future_days`` after ``now`` (naive local time, as the dates are). A warning when some are out of range,
    blocking when more than ``max_out_of_range_share`` of the column's dates are. ``frame`` may be a scan of
    the rows' file (engine spark: only the date columns are read, a batch at a time)."""
    rows = frame.lazy()
    names = rows.collect_schema().names()
    lo = datetime.combine(quality.not_before, time()) if quality.not_before else None
    after = datetime.combine(quality.not_after + timedelta(days=1), time()) if quality.not_after else None
    horizon = now.replace(microsecond=0) + timedelta(days=quality.future_days)
    checks: dict[str, tuple[pl.Expr, datetime | None, list[str]]] = {}
    for col in ENTITIES[entity].columns:
        if col.type != "datetime" or col.name not in names:
            continue
        value = pl.col(col.name)
        conditions: list[pl.Expr] = []
        words: list[str] = []
        highest: list[datetime] = []
        if lo is not None:
            conditions.append(value < lo)
            words.append(f"before {quality.not_before}")
        if after is not None:
            conditions.append(value >= after)
            words.append(f"after {quality.not_after}")
            highest.append(after - timedelta(microseconds=1))
        if col.name not in NO_HORIZON:
            conditions.append(value > horizon)
            words.append(f"more than {quality.future_days} days ahead, i.e. after {horizon:%Y-%m-%d %H:%M}")
            highest.append(horizon)
        if conditions:
            bad = pl.any_horizontal(conditions).fill_null(False)
            checks[col.name] = (bad, min(highest) if highest else None, words)
    if not checks:
        return []
    counts = (
        rows.select(
            *(bad.sum().alias(f"bad:{c}") for c, (bad, _, _) in checks.items()),
            *(pl.col(c).count().alias(f"n:{c}") for c in checks),
            pl.len().alias("rows"),
        )
        .collect()
        .row(0, named=True)
    )
    if not counts["rows"]:
        return []
    mostly = round(1 - quality.max_out_of_range_share, 10)
    out = []
    for column, (bad, hi, words) in checks.items():
        n_bad, filled = int(counts[f"bad:{column}"] or 0), int(counts[f"n:{column}"] or 0)
        share = n_bad / filled if filled else 0.0
        found = []
        if n_bad:  # a few of the values out of range, as samples
            picked = rows.select(pl.col(column).filter(bad).unique(maintain_order=True).head(5)).collect()
            found = picked.to_series().to_list()
        out.append(
            Outcome(
                suite=suite,
                expectation=BETWEEN,
                column=column,
                blocking=not n_bad or share > quality.max_out_of_range_share,
                success=not n_bad,
                element_count=counts["rows"],
                unexpected_count=n_bad,
                unexpected_percent=100 * share,
                samples=[_day(v) for v in found if v is not None],
                kwargs={
                    "min_value": lo.isoformat() if lo else None,
                    "max_value": hi.isoformat() if hi else None,
                    "mostly": mostly,
                },
                note="dates " + (f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else words[0]),
            )
        )
    return out


def validate(
    frame: pl.DataFrame | Path,
    entity: str,
    source: str,
    quality: SourceQualityConfig | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> list[Outcome]:
    """The entity's suite, with the source's thresholds (defaults when none are given), then the date
    range. ``now``: the refresh's time, naive local like the dates (default: this machine's clock).
    ``settings`` with [engine] kind = "spark": the suite runs on Spark (GX's Spark execution engine), the
    date range here (it reads the frame the refresh holds anyway). ``frame`` a Parquet file (engine spark: the
    rows the executors standardized): the suite's Spark job reads it, the date range a scan of its dates."""
    for started in _warming:  # its batch definition is made once, by that thread
        started.join()
    from great_expectations.core import ExpectationSuite

    quality = quality or SourceQualityConfig.model_validate({})
    suite_dict = apply_thresholds(load_suite_dict(entity, source), entity, quality)
    try:
        suite = ExpectationSuite(**suite_dict)
    except Exception as e:  # GX's own schema errors: name the suite file
        raise ConfigError(f"expectation suite for {source}.{entity} is invalid: {e}") from e
    columns = sorted({c for e in suite_dict["expectations"] if (c := e.get("kwargs", {}).get("column"))})
    names = frame.columns if isinstance(frame, pl.DataFrame) else pl.read_parquet_schema(frame).keys()
    present = [c for c in columns if c in names] or list(names)[:1]
    # Only the columns the suite reads go to pandas (or Spark): the conversion is the costly part.
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
    if settings is not None and settings.engine.kind == "spark":
        from dashboard.derived.spark import gate

        staging = Store(settings.data_path).staging / source
        read = frame.select(present) if isinstance(frame, pl.DataFrame) else frame
        name = f"the gate of {source}.{entity}"
        result = gate.validate(settings, name, read, suite, result_format, staging, present)
    elif isinstance(frame, Path):
        raise ValueError("a file's rows are validated on Spark only (engine spark)")
    else:
        read = frame.select(present).to_pandas()
        with _gx:
            batch = _batch_definition().get_batch(batch_parameters={"dataframe": read})
            result = batch.validate(suite, result_format=result_format)
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
    rows = frame if isinstance(frame, pl.DataFrame) else pl.scan_parquet(frame)
    return outcomes + date_checks(rows, entity, suite_dict["name"], quality, now or datetime.now())
