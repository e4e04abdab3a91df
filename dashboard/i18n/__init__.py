"""The UI's words in Chinese and English: ``t(key, lang)`` looks one up. No streamlit here."""

from __future__ import annotations

from typing import Literal, get_args

from dashboard.i18n.en import STRINGS as EN
from dashboard.i18n.metrics import metric_texts
from dashboard.i18n.zh import STRINGS as ZH

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = get_args(Lang)
_METRICS = metric_texts()  # metric.<name>: the semantic layer's labels (dashboard/metrics.toml)
CATALOG: dict[str, dict[str, str]] = {"zh": {**ZH, **_METRICS["zh"]}, "en": {**EN, **_METRICS["en"]}}


def t(key: str, lang: str, **values: object) -> str:
    """The text for ``key`` in ``lang``, with ``{placeholders}`` filled from ``values``."""
    try:
        text = CATALOG[lang][key]
    except KeyError:
        raise KeyError(f"no {lang!r} text for {key!r} (add it to dashboard/i18n/{lang}.py)") from None
    return text.format(**values) if values else text
