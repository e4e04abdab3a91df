"""The way forward from a quarantine: the one-off ``cockpit quarantine publish`` with the source and
snapshot filled in, and the exact ``[sources.quality]`` setting of cockpit.toml that would let this
pattern pass for good (or, where no setting reaches the check, the expectation file to write).

The lines are kept in the quarantine's validation result, in English (``way_forward``: what ``cockpit
refresh``, ``cockpit status`` and ``cockpit quarantine list`` print) and in Chinese (``way_forward_zh``:
the data-quality page in a Chinese session), so every place shows the same numbers. The commands name
the config file (``cockpit --config PATH ...``), so they work as printed from any folder.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

from dashboard.core.config import Settings, SourceConfig
from dashboard.core.entities import ENTITIES
from dashboard.pipeline.validate import BETWEEN, NOT_NULL, ROW_COUNT, Outcome, percent

INDENT = "     "
# The words around the commands and settings, per language (the commands and settings themselves are code).
TEXT: dict[str, dict[str, str]] = {
    "en": {
        "head": "Two ways forward:",
        "once": "1. publish this snapshot once, as it is (recorded in the audit log with your reason):",
        "needs": "   (this needs allow_quarantine_actions = true under [quality] in cockpit.toml)",
        "good": '2. or accept this pattern for good: add to the [[sources]] entry name = "{source}" in cockpit.toml '
        "(into its [sources.quality] table if it has one):",
        "again": "   then refresh again: {command}",
        "unreached": "{lead} for {what} (no cockpit.toml setting reaches it): write "
        "expectations/{source}.{entity}.json with it and the threshold you accept (it replaces the one in "
        "expectations/{entity}.json), then refresh again",
        "lead_and": "   and",
        "lead_or": "2. or, to accept it for good,",
        "rows": "{rows} rows",
        "entity_rows": "{entity}: {rows} rows",
        "counted": "{n} of {total} rows",
        "out_of_range": "{column}: {pct:.1f}% out of range ({counted}), {note}",
        "no_date": "dates like {sample} usually stand for 'no date': better emptied in the export",
        "set_aside": "; those {n} rows are then set aside ({entity}.rejected.parquet)",
        "empty": "{column}: {pct:.1f}% empty ({counted}), {allowed}% allowed now{aside}",
        "invalid": "{column}: {pct:.1f}% of its filled values fail {expectation}, {allowed}% allowed now",
    },
    "zh": {
        "head": "两种处理方式：",
        "once": "1. 按原样发布这一次快照（连同您填写的原因记入审计日志）：",
        "needs": "   （需要在 cockpit.toml 的 [quality] 中设置 allow_quarantine_actions = true）",
        "good": '2. 或长期接受这种情况：在 cockpit.toml 中 name = "{source}" 的 [[sources]] 条目下加入'
        "（若已有 [sources.quality] 表，加到其中）：",
        "again": "   然后重新刷新：{command}",
        "unreached": "{lead}对于 {what}（cockpit.toml 中没有可调的设置）：写一个 expectations/{source}.{entity}.json，"
        "包含这条检查和您接受的阈值（它会替代 expectations/{entity}.json 中的那条），然后重新刷新",
        "lead_and": "   另外，",
        "lead_or": "2. 或者，要长期接受它，",
        "rows": "{rows} 行",
        "entity_rows": "{entity}：{rows} 行",
        "counted": "{total} 行中的 {n} 行",
        "out_of_range": "{column}：{pct:.1f}% 超出范围（{counted}），{note}",
        "no_date": "像 {sample} 这样的日期通常表示「没有日期」：最好在导出时留空",
        "set_aside": "；这 {n} 行随后会被单独存放（{entity}.rejected.parquet）",
        "empty": "{column}：{pct:.1f}% 为空（{counted}），目前允许 {allowed}%{aside}",
        "invalid": "{column}：已填写的值中有 {pct:.1f}% 未通过 {expectation}，目前允许 {allowed}%",
    },
}


def cockpit(settings: Settings) -> str:
    """``cockpit --config PATH``: the command line that reaches this config from any folder."""
    return f"cockpit --config {shlex.quote(str(settings.config_file))}" if settings.config_file else "cockpit"


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


def _suggest(
    src: SourceConfig, o: Outcome, shares: dict[str, dict[str, float]], notes: list[str], text: dict[str, str]
) -> dict[str, Any]:
    """The setting that lets this failed outcome pass: {key: value}; {} when no setting reaches it."""
    entity, column, pct = o.entity, o.column, o.unexpected_percent
    n, total = o.unexpected_count, o.element_count
    counted = text["counted"].format(n=n, total=total) if total is not None else ""
    if o.expectation == ROW_COUNT:
        try:
            rows = int(float(str(o.observed)))
        except ValueError:
            return {}
        if isinstance(src.quality.min_rows, dict) or len({t.entity for t in src.tables}) > 1:
            current = src.quality.min_rows if isinstance(src.quality.min_rows, dict) else {}
            notes.append(text["entity_rows"].format(entity=entity, rows=rows))
            return {"min_rows": {**current, entity: rows}}
        notes.append(text["rows"].format(rows=rows))
        return {"min_rows": rows}
    if column is None or pct is None:
        return {}
    if _is_date_check(o):
        share = max(_share_above(pct), src.quality.max_out_of_range_share)
        notes.append(text["out_of_range"].format(column=f"{entity}.{column}", pct=pct, counted=counted, note=o.note))
        if any(v[:4] >= "2200" for v in o.samples):
            notes.append(text["no_date"].format(sample=max(o.samples)))
        return {"max_out_of_range_share": share}
    key = _column_key(src, entity, column)
    which = "max_null_share" if o.expectation == NOT_NULL else "max_invalid_share"
    shares.setdefault(which, dict(getattr(src.quality, which)))[key] = _share_above(pct)
    allowed = percent(1 - float(o.kwargs.get("mostly", 1.0)))
    if which == "max_null_share":
        required = ENTITIES[entity].column(column).required
        aside = text["set_aside"].format(n=n, entity=entity) if required else ""
        notes.append(
            text["empty"].format(column=f"{entity}.{column}", pct=pct, counted=counted, allowed=allowed, aside=aside)
        )
    else:
        what = {"column": f"{entity}.{column}", "pct": pct, "expectation": o.expectation, "allowed": allowed}
        notes.append(text["invalid"].format(**what))
    return {which: shares[which]}


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return _number(value) if isinstance(value, float) else str(value)


def way_forward(
    settings: Settings, src: SourceConfig, snapshot_id: str, failed: list[Outcome], lang: str = "en"
) -> list[str]:
    """The lines a quarantine shows after its reasons: both ways forward, with the numbers filled in."""
    if not failed:
        return []
    text = TEXT[lang]
    lines = [
        text["head"],
        text["once"],
        f'{INDENT}{cockpit(settings)} quarantine publish {src.name} {snapshot_id} --reason "..."',
    ]
    if not settings.quality.allow_quarantine_actions:
        lines.append(text["needs"])
    setting: dict[str, Any] = {}
    shares: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    unreached: list[Outcome] = []
    for o in failed:
        found = _suggest(src, o, shares, notes, text)
        for k, v in found.items():
            if k in setting and isinstance(v, float):
                v = max(setting[k], v)
            elif k in setting and isinstance(v, dict):
                v = {**setting[k], **v}
            setting[k] = v
        if not found:
            unreached.append(o)
    if setting:
        lines.append(text["good"].format(source=src.name))
        lines.append(f"{INDENT}[sources.quality]")
        lines += [f"{INDENT}{k} = {_toml(v)}" for k, v in setting.items()]
        lines += [f"{INDENT}# {n}" for n in notes]
        lines.append(text["again"].format(command=f"{cockpit(settings)} refresh {src.name}"))
    for o in unreached:
        what = f"{o.expectation} on {o.entity}{f'.{o.column}' if o.column else ''}"
        lead = text["lead_and"] if setting else text["lead_or"]
        lines.append(text["unreached"].format(lead=lead, what=what, source=src.name, entity=o.entity))
    return lines
