"""The Chinese UI says everything in Chinese: a Latin word in a zh text is a name (a product, a file format, a
method), an acronym Chinese readers use as is, a SQL keyword, or something the reader types (a command, a file, a
setting, in backticks or quotes) — never an English word left untranslated (the SQL tab's 指定 schema)."""

from __future__ import annotations

import re
from string import Formatter

from dashboard.i18n import CATALOG

# what a Chinese reader reads as it is written
NAMES = {"Chrome/Chromium", "Data", "Docs", "Excel", "CSV", "JSON", "Lines", "Parquet", "zip", "index.html", "Language"}
ACRONYMS = {"AUC", "BG/NBD", "Brier", "CAC", "CRM", "MB", "RFM", "SQL", "U"}
SQL_WORDS = {"AT", "ATTACH", "CALL", "COPY", "EXPLAIN", "INSTALL", "PRAGMA", "SELECT", "SET"}
TYPED = {"allow_quarantine_actions", "cockpit.toml", "no-auth", "sql_timeout_seconds", "true"}
_TYPED_SPANS = re.compile(r"`[^`]*`|\[[^\]]*\]|'[^']*'")  # a command, a config section, a quoted name
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_\-/.]*[A-Za-z0-9]|[A-Za-z]")


def latin_words(template: str) -> set[str]:
    text = "\x00".join(literal for literal, *_ in Formatter().parse(template))
    return set(_WORD.findall(_TYPED_SPANS.sub("", text)))


def test_no_english_word_is_left_in_the_chinese_texts() -> None:
    allowed = NAMES | ACRONYMS | SQL_WORDS | TYPED
    found = {key: sorted(left) for key, text in CATALOG["zh"].items() if (left := latin_words(text) - allowed)}
    assert found == {}


def test_the_sql_tab_names_what_it_refuses_in_chinese() -> None:
    rules = CATALOG["zh"]["explore.sql.rules"]
    assert "库名或模式名" in rules and "schema" not in rules
