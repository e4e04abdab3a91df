"""Chinese and a Latin word or a number are set a space apart, as the rest of the UI writes them (已 380 天未下单,
回测 AUC 最高, 门店 POS); a date or an amount in 万 is one token (2026年6月10日, ¥140.3万). Every zh string is held to
it: the catalog's, the semantic layer's labels, the built-in and the demo config's value labels, and what a
placeholder puts beside the template's own Chinese (由{method}评分 named BG/NBD read 由BG/NBD 基线评分)."""

from __future__ import annotations

import re
from pathlib import Path
from string import Formatter

import polars as pl
import pytest

from dashboard.core.config import load_settings
from dashboard.derived.churn.card import why_serving
from dashboard.i18n import CATALOG, t
from dashboard.i18n.values import VALUES

ROOT = Path(__file__).resolve().parents[1]
HAN, LATIN = r"[\u3400-\u4dbf\u4e00-\u9fff]", r"[A-Za-z0-9¥$%]"
GLUED = re.compile(f"{HAN}{LATIN}|{LATIN}{HAN}")
TOKENS = re.compile(r"\d{4}年\d{1,2}月(\d{1,2}日)?|\d{1,2}月\d{1,2}日|[\d.,]+[万亿]")  # one token each


def glued(text: str) -> list[str]:
    return GLUED.findall(TOKENS.sub("·", text))


def literal(template: str) -> str:
    """The template's own words, each placeholder kept apart from them (its value is checked below)."""
    return "\x00".join(text for text, *_ in Formatter().parse(template))


def zh_labels() -> dict[str, str]:
    demo = load_settings(ROOT / "cockpit.toml").label_texts()
    out = {}
    for origin, table in (("built-in", VALUES), ("cockpit.toml", demo)):
        for dimension, codes in table.items():
            for code, text in codes.items():
                out[f"{origin} {dimension}.{code}"] = text.get("zh", "")
    return out


def test_every_chinese_text_sets_latin_words_and_numbers_apart() -> None:
    found = {k: glued(literal(v)) for k, v in CATALOG["zh"].items()}
    found |= {k: glued(v) for k, v in zh_labels().items()}
    assert {k: v for k, v in found.items() if v} == {}


@pytest.mark.parametrize("value", ["BG/NBD 基线", "42", "¥1,234", "2026年6月10日"])
def test_a_latin_or_number_value_is_set_apart_from_the_templates_chinese(value: str) -> None:
    found = {}
    for key, template in CATALOG["zh"].items():
        fields = {f: spec for _, f, spec, _ in Formatter().parse(template) if f}
        if fields:  # a number where the template formats one ({n:,})
            text = t(key, "zh", **{f: 1234 if spec else value for f, spec in fields.items()})
            if bad := glued(text):
                found[key] = (bad, text)
    assert found == {}


def test_the_churn_model_card_names_its_method_as_the_ui_writes_it() -> None:
    why = "churn.why.best_auc"
    figures = {"auc": "0.803", "model": "0.795", "recency": "0.731", "others": "最近活跃基线 0.731"}
    assert t(why, "zh", method=t("churn.method.bgnbd", "zh"), **figures).startswith("由 BG/NBD 基线评分：")
    assert t(why, "zh", method=t("churn.method.model", "zh"), **figures).startswith("由流失模型评分：")
    assert t(why, "en", method=t("churn.method.bgnbd", "en"), **figures).startswith("BG/NBD baseline serves:")


def test_the_churn_model_cards_sentences_follow_each_other_as_each_language_writes_them() -> None:
    """The walk found …0.807）。 模型回测训练用了… on the churn page: an English space between two Chinese sentences."""
    card = pl.DataFrame(
        {
            "method": ["model", "recency", "bgnbd"],
            "chosen": [True, False, False],
            "serve_reason": ["best_auc", None, None],
            "auc": [0.816, 0.744, 0.807],
            "backtest_windows": [102510, None, None],
            "backtest_windows_needed": [29914, None, None],
            "train_horizon_days": [60, None, None],
            "horizon_days": [90, 90, 90],
        }
    )
    zh, en = why_serving(card, "zh"), why_serving(card, "en")
    assert "0.807）。模型回测训练用了 102,510 个客户窗口" in zh, zh
    assert zh.count("。") == 3 and "。 " not in zh, zh
    assert "0.807). The model's backtest trained on 102,510" in en and en.count(". ") == 2, en
