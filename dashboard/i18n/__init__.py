"""The UI's words in Chinese and English: ``t(key, lang)`` looks one up. No streamlit here."""

from __future__ import annotations

import re
from string import Formatter
from typing import Literal, get_args

from dashboard.i18n.en import STRINGS as EN
from dashboard.i18n.metrics import metric_texts
from dashboard.i18n.zh import STRINGS as ZH

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = get_args(Lang)
_METRICS = metric_texts()  # metric.<name>: the semantic layer's labels (dashboard/metrics.toml)
CATALOG: dict[str, dict[str, str]] = {"zh": {**ZH, **_METRICS["zh"]}, "en": {**EN, **_METRICS["en"]}}

# Chinese text and a Latin word or a number are set a space apart (已 380 天未下单, 回测 AUC 最高); a date or an
# amount in 万 is one token (2026年6月10日, ¥140.3万). tests/test_i18n_spacing.py holds every zh string to it.
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z0-9¥$%]")
_FORMATTER = Formatter()


def t(key: str, lang: str, **values: object) -> str:
    """The text for ``key`` in ``lang``, with ``{placeholders}`` filled from ``values``."""
    try:
        text = CATALOG[lang][key]
    except KeyError:
        raise KeyError(f"no {lang!r} text for {key!r} (add it to dashboard/i18n/{lang}.py)") from None
    if not values:
        return text
    return _spaced(text, values) if lang == "zh" else text.format(**values)


# where a column's heading is looked up: a metric's label, then the tables' headings
HEADINGS = ("metric", "col", "explore.col", "c360.col", "cat.col", "dq.col", "audit.col", "privacy.col")


def heading(column: str, lang: str) -> str:
    """A column's heading: ``col.<name>`` (or another table's ``*.col.<name>``) in the language, else the name."""
    words = CATALOG[lang]
    return next((words[k] for p in HEADINGS if (k := f"{p}.{column}") in words), column)


def _spaced(text: str, values: dict[str, object]) -> str:
    """``text.format(**values)``, with a space where a value's Latin or digit edge meets the template's Chinese
    (由{method}评分 with BG/NBD 基线 → 由 BG/NBD 基线评分; with 流失模型 → 由流失模型评分)."""
    out = ""
    for literal, field, spec, conversion in _FORMATTER.parse(text):
        out = _join(out, literal)
        if field is not None:
            value = _FORMATTER.get_field(field, (), values)[0]
            value = _FORMATTER.convert_field(value, conversion)
            out = _join(out, _FORMATTER.format_field(value, _FORMATTER.vformat(spec or "", (), values)))
    return out


# A number stays on the line of the word after it (22 天, 731 days, 3 个渠道): a grid or a page breaks a sentence at
# its spaces, and 累计 22 / 天有下单 reads as a number without its unit. UNIT_GAP serves Python's re and Polars' regex.
UNIT_GAP = r"(\d) ([a-z\u3400-\u4dbf\u4e00-\u9fff])"
NO_BREAK = "\u00a0"


def units_kept(text: str) -> str:
    """``text`` with a no-break space between each number and the word after it (churn reasons as shown)."""
    return re.sub(UNIT_GAP, rf"\1{NO_BREAK}\2", text)


def unbroken(text: str) -> str:
    """``text`` kept on one line wherever it is set (a source's name and time on the big screen's as-of line):
    its spaces no-break, a word joiner between its other characters, since Chinese breaks between any two
    (2026年12 / 月6日)."""
    return "\u2060".join(text.replace(" ", NO_BREAK))


def sentences(parts: list[str], lang: str) -> str:
    """Sentences one after another: a space between them in English, none in Chinese (…0.807）。模型回测…)."""
    return ("" if lang == "zh" else " ").join(p for p in parts if p)


def _join(left: str, right: str) -> str:
    if left and right and _apart(left[-1], right[0]):
        return f"{left} {right}"
    return left + right


def _apart(a: str, b: str) -> bool:
    return bool((HAN.match(a) and LATIN.match(b)) or (LATIN.match(a) and HAN.match(b)))
