"""The way forward from a quarantine: the one-off ``cockpit quarantine publish`` with the source and
snapshot filled in, and the exact ``[sources.quality]`` setting of cockpit.toml that would let this
pattern pass for good (or, where no setting reaches the check, the expectation file to write).

The lines are kept in the quarantine's validation result, so ``cockpit refresh``, ``cockpit status``,
``cockpit quarantine list`` and the data-quality page show the same text.
"""

from __future__ import annotations

import math
import re
from typing import Any

from dashboard.core.config import Settings, SourceConfig
from dashboard.core.entities import ENTITIES
from dashboard.pipeline.validate import BETWEEN, NOT_NULL, ROW_COUNT, Outcome, percent

INDENT = "     "


def _share_above(pct: float) -> float:
    """The next whole percent above an observed share: 5.68 % → 0.06 (passes with room to spare)."""
    return min(1.0, (math.floor(pct + 1e-9) + 1) / 100)


def _number(v: float) -> str:
    return repr(round(v, 4))


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def _column_key(src: SourceConfig, entity: str, column: str) -> str:
    """``column``, or ``entity.column`` when another of the source's entities has a column of that name."""
    others = {t.entity for t in src.tables} - {entity}
    return f"{entity}.{column}" if any(column in ENTITIES[e].column_names for e in others) else column


def _is_date_check(o: Outcome) -> bool:
    return o.expectation == BETWEEN and o.note is not None


def _suggest(src: SourceConfig, o: Outcome, shares: dict[str, dict[str, float]], notes: list[str]) -> dict[str, Any]:
    """The setting that lets this failed outcome pass: {key: value}; {} when no setting reaches it."""
    entity, column, pct = o.entity, o.column, o.unexpected_percent
    counted = f"{o.unexpected_count} of {o.element_count} rows" if o.element_count is not None else ""
    if o.expectation == ROW_COUNT:
        try:
            rows = int(float(str(o.observed)))
        except ValueError:
            return {}
        if isinstance(src.quality.min_rows, dict) or len({t.entity for t in src.tables}) > 1:
            current = src.quality.min_rows if isinstance(src.quality.min_rows, dict) else {}
            notes.append(f"{entity}: {rows} rows")
            return {"min_rows": {**current, entity: rows}}
        notes.append(f"{rows} rows")
        return {"min_rows": rows}
    if column is None or pct is None:
        return {}
    if _is_date_check(o):
        share = max(_share_above(pct), src.quality.max_out_of_range_share)
        notes.append(f"{entity}.{column}: {pct:.1f}% out of range ({counted}), {o.note}")
        if any(v[:4] >= "2200" for v in o.samples):
            notes.append(f"dates like {max(o.samples)} usually stand for 'no date': better emptied in the export")
        return {"max_out_of_range_share": share}
    key = _column_key(src, entity, column)
    which = "max_null_share" if o.expectation == NOT_NULL else "max_invalid_share"
    shares.setdefault(which, dict(getattr(src.quality, which)))[key] = _share_above(pct)
    allowed = percent(1 - float(o.kwargs.get("mostly", 1.0)))
    if which == "max_null_share":
        required = ENTITIES[entity].column(column).required
        aside = f"; those {o.unexpected_count} rows are then set aside ({entity}.rejected.parquet)" if required else ""
        notes.append(f"{entity}.{column}: {pct:.1f}% empty ({counted}), {allowed}% allowed now{aside}")
    else:
        notes.append(f"{entity}.{column}: {pct:.1f}% of its filled values fail {o.expectation}, {allowed}% allowed now")
    return {which: shares[which]}


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return _number(value) if isinstance(value, float) else str(value)


def way_forward(settings: Settings, src: SourceConfig, snapshot_id: str, failed: list[Outcome]) -> list[str]:
    """The lines a quarantine shows after its reasons: both ways forward, with the numbers filled in."""
    if not failed:
        return []
    lines = [
        "Two ways forward:",
        "1. publish this snapshot once, as it is (recorded in the audit log with your reason):",
        f'{INDENT}cockpit quarantine publish {src.name} {snapshot_id} --reason "..."',
    ]
    if not settings.quality.allow_quarantine_actions:
        lines.append("   (this needs allow_quarantine_actions = true under [quality] in cockpit.toml)")
    setting: dict[str, Any] = {}
    shares: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    unreached: list[Outcome] = []
    for o in failed:
        found = _suggest(src, o, shares, notes)
        for k, v in found.items():
            if k in setting and isinstance(v, float):
                v = max(setting[k], v)
            elif k in setting and isinstance(v, dict):
                v = {**setting[k], **v}
            setting[k] = v
        if not found:
            unreached.append(o)
    if setting:
        lines.append(
            f'2. or accept this pattern for good: add to the [[sources]] entry name = "{src.name}" in cockpit.toml '
            "(into its [sources.quality] table if it has one):"
        )
        lines.append(f"{INDENT}[sources.quality]")
        lines += [f"{INDENT}{k} = {_toml(v)}" for k, v in setting.items()]
        lines += [f"{INDENT}# {n}" for n in notes]
        lines.append(f"   then refresh again: cockpit refresh {src.name}")
    for o in unreached:
        entity = o.entity
        what = f"{o.expectation} on {entity}{f'.{o.column}' if o.column else ''}"
        lines.append(
            f"{'   and' if setting else '2. or, to accept it for good,'} for {what} (no cockpit.toml setting reaches "
            f"it): write expectations/{src.name}.{entity}.json with it and the threshold you accept (it replaces "
            f"the one in expectations/{entity}.json), then refresh again"
        )
    return lines
