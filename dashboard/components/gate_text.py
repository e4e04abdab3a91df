"""The quality gate's findings in the reader's language: a failed or warning expectation, a row issue of
standardization, and why a proposed ``[sources.quality]`` setting lets a gap pass. The pipeline words them
in English for logs and the CLI (``Outcome.describe``, ``RowIssue``); these are the same facts for a page.
Entities come from the value dictionary, fields from the data dictionary, rules and problems from the
catalog; a problem not known here is shown as the pipeline wrote it."""

from __future__ import annotations

from typing import Any

from dashboard.components import fmt, labels
from dashboard.components.data import settings
from dashboard.core.dictionary import Dictionary, for_settings, load_dictionary
from dashboard.core.errors import CockpitError
from dashboard.i18n import t

# RowIssue.problem / .action as standardize writes them → catalog keys (gate.problem.* / gate.action.*)
PROBLEMS = {
    "unparseable date": "date",
    "not a number": "number",
    "not a yes/no value (read as unknown)": "yes_no",
    "empty": "empty",
    "not a valid mobile number": "phone",
    "not a valid email": "email",
    "not a valid ID number": "id_number",
    "unknown funnel stage": "stage",
    "exact duplicate of an earlier row": "duplicate",
    "person erased on request (privacy suppression list)": "erased",
}
ACTIONS = {
    "left empty": "left_empty",
    "row set aside": "set_aside",
    "kept, flagged invalid": "flagged",
    "kept as given": "kept",
    "duplicate removed": "removed",
    "row dropped": "dropped",
}
MISSING_COLUMN = "column missing in "


def _dictionary() -> Dictionary:
    try:
        return for_settings(settings())
    except CockpitError:
        return load_dictionary()


def field(entity: str, name: str, lang: str) -> str:
    """A canonical field by the data dictionary's words ("线索编号"); in English with its name beside, since
    that is what cockpit.toml and the SQL tab call it."""
    info = _dictionary().field(entity, name)
    words = (info.zh.split("（")[0] if lang == "zh" else info.en.split(" (")[0]).strip()
    if not words:
        return name
    return words if lang == "zh" else f"{words} ({name})"


def where(entity: str, column: str | None, lang: str) -> str:
    what = labels.value("entity", entity, lang)
    if not column or column == "*":
        return what
    return f"{what} · {field(entity, column, lang)}"


def rule(expectation: str, lang: str) -> str:
    key = f"gate.rule.{expectation.removeprefix('expect_')}"
    text = t(key, lang)
    return expectation if text == key else text


def outcome(o: Any, lang: str) -> str:
    """One expectation's result: where, which rule, how many rows and how many were allowed, examples."""
    kw = o.kwargs or {}
    if o.unexpected_count is not None:
        detail = t("gate.failed_rows", lang, n=fmt.count(o.unexpected_count), pct=fmt.pct(_share(o), 1))
        if "mostly" in kw:
            detail += t("gate.allowed", lang, pct=fmt.pct(1 - float(kw["mostly"]), 1))
    else:
        detail = t("gate.observed", lang, value=o.observed if o.observed is not None else "—")
    if kw.get("min_value") is not None or kw.get("max_value") is not None:
        detail += t("gate.range", lang, low=_bound(kw.get("min_value")), high=_bound(kw.get("max_value")))
    if o.samples:  # a coded column's examples by their names (the channel "unknown" is 未知)
        dim = labels.COLUMNS.get(o.column or "")
        shown = [labels.value(dim, v, lang) if dim else v for v in o.samples]
        detail += t("gate.examples", lang, values=", ".join(dict.fromkeys(shown[:3])))
    return t("gate.outcome", lang, where=where(o.entity, o.column, lang), rule=rule(o.expectation, lang), detail=detail)


def _share(o: Any) -> float | None:
    return None if o.unexpected_percent is None else o.unexpected_percent / 100


def _bound(value: object) -> str:
    if value is None:
        return "—"
    text = str(value)
    return text.replace("T", " ").removesuffix(":00").removesuffix(" 00:00") if "T" in text else text


def row_issue(entity: str, issue: Any, lang: str) -> str:
    """A standardization finding: where, how many rows, the problem and what was done with the rows."""
    problem, action = str(issue.problem), str(issue.action)
    if problem.startswith(MISSING_COLUMN):
        what = t("gate.problem.missing_column", lang, file=problem.removeprefix(MISSING_COLUMN))
        column = None  # the column is the file's own header, not a canonical field
        head = f"{labels.value('entity', entity, lang)} · {issue.column}"
    else:
        key = PROBLEMS.get(problem)
        what = t(f"gate.problem.{key}", lang) if key else problem
        column = issue.column
        head = where(entity, column, lang)
    if action.startswith("set to '"):
        done = t("gate.action.filled", lang, value=labels.value("channel", action[8:-1], lang))
    else:
        key = ACTIONS.get(action)
        done = t(f"gate.action.{key}", lang) if key else action
    return t("gate.row_issue", lang, where=head, n=fmt.count(issue.count), problem=what, action=done)


def acceptance(gate: Any, lang: str) -> list[str]:
    """Why each proposed ``[sources.quality]`` share lets the sample pass: the share of the sample's rows that
    were empty (or invalid), the rows, and the setting."""
    out = []
    for o in gate.default_failed:
        for key, shares in gate.quality.items():
            share = shares.get(f"{o.entity}.{o.column}")
            if share is None:
                continue
            empty = key == "max_null_share"
            what = t("gate.empty", lang) if empty else t("gate.invalid", lang, rule=rule(o.expectation, lang))
            out.append(
                t(
                    "gate.accept",
                    lang,
                    where=where(o.entity, o.column, lang),
                    pct=fmt.pct(_share(o), 1),
                    what=what,
                    n=fmt.count(o.unexpected_count),
                    total=fmt.count(o.element_count),
                    setting=f"{key} = {share}",
                )
            )
    return out
