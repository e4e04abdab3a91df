"""The data dictionary (zh/en description, classification, personal-data flag per canonical field)
and the masking of personal values: ``13800138000`` → ``138****8000``, ``张三`` → ``张*``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from dashboard.core.config import Settings
from dashboard.core.entities import ENTITIES
from dashboard.core.errors import ConfigError

DEFAULT_PATH = Path(__file__).with_name("data_dictionary.toml")
CLASSIFICATIONS: tuple[str, ...] = ("master", "transaction", "behaviour", "external", "cost")


@dataclass(frozen=True)
class FieldInfo:
    entity: str
    field: str
    classification: str
    personal: bool
    zh: str
    en: str


@dataclass(frozen=True)
class Dictionary:
    fields: dict[tuple[str, str], FieldInfo]
    entities: dict[str, dict[str, str]]  # entity → {classification, zh, en}
    source_classes: dict[str, str]  # a whole source classified otherwise (e.g. purchased lists: external)

    def field(self, entity: str, name: str) -> FieldInfo:
        return self.fields.get((entity, name)) or FieldInfo(entity, name, "", False, "", "")

    def classification(self, source: str, entity: str, name: str) -> str:
        return self.source_classes.get(source) or self.field(entity, name).classification

    def personal(self, entity: str, name: str) -> bool:
        return self.field(entity, name).personal


def load_dictionary(path: Path | None = None) -> Dictionary:
    return _load(path or DEFAULT_PATH)


@cache
def _load(path: Path) -> Dictionary:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"data dictionary {path}: cannot read it: {e}") from None
    fields: dict[tuple[str, str], FieldInfo] = {}
    entities: dict[str, dict[str, str]] = {}
    for entity, spec in (raw.get("entities") or {}).items():
        if entity not in ENTITIES:
            raise ConfigError(f"data dictionary {path}: unknown entity '{entity}'")
        default = _classification(path, entity, spec.get("classification", ""))
        entities[entity] = {"classification": default, "zh": spec.get("zh", ""), "en": spec.get("en", "")}
        for name, f in (spec.get("fields") or {}).items():
            cls = _classification(path, f"{entity}.{name}", f.get("classification", default))
            fields[(entity, name)] = FieldInfo(
                entity, name, cls, bool(f.get("personal")), f.get("zh", ""), f.get("en", "")
            )
    sources = {s: _classification(path, f"sources.{s}", c) for s, c in (raw.get("sources") or {}).items()}
    return Dictionary(fields, entities, sources)


def _classification(path: Path, where: str, value: Any) -> str:
    if value not in CLASSIFICATIONS:
        raise ConfigError(
            f"data dictionary {path}: {where}: classification '{value}' is not one of {', '.join(CLASSIFICATIONS)}"
        )
    return str(value)


# -- masking ---------------------------------------------------------------------------------
_DIGITS = re.compile(r"^\+?\d[\d\s\-]{5,}[\dXx]?$")  # phones, caller numbers, ID numbers


# Masking functions, created once per connection (schema main, so every role schema finds them). The
# keyed pseudonym of personal keys is made with the key by query.warehouse (PSEUDONYM_MACRO).
MASK_MACROS = r"""
CREATE OR REPLACE MACRO main.mask_phone(p) AS CASE
    WHEN p IS NULL THEN NULL
    WHEN length(p) >= 7 THEN left(p, 3) || '****' || right(p, 4)
    ELSE '****' END;
CREATE OR REPLACE MACRO main.mask_id(p) AS CASE
    WHEN p IS NULL THEN NULL
    WHEN length(p) > 8 THEN left(p, 4) || repeat('*', length(p) - 8) || right(p, 4)
    ELSE '****' END;
CREATE OR REPLACE MACRO main.mask_email(p) AS CASE
    WHEN p IS NULL THEN NULL
    WHEN position('@' IN p) > 1 THEN left(p, 1) || '***' || substr(p, position('@' IN p))
    ELSE '***' END;
-- What a value is, by its content: a mainland mobile (with or without +86/0086 and separators), an
-- e-mail address, an 18-character resident ID number; NULL otherwise.
CREATE OR REPLACE MACRO main.pii_kind(p) AS CASE
    WHEN p IS NULL THEN NULL
    WHEN regexp_full_match(p, '\s*(\+?86|0086)?[\s-]*1[3-9][0-9]([\s-]*[0-9]){8}\s*') THEN 'phone'
    WHEN regexp_full_match(p, '\s*[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\s*') THEN 'email'
    WHEN regexp_full_match(p, '\s*[0-9]{17}[0-9Xx]\s*') THEN 'id_number'
    ELSE NULL END;
CREATE OR REPLACE MACRO main.scrub_pii(p) AS
    regexp_replace(
        regexp_replace(
            regexp_replace(p, '([0-9]{6})[0-9]{8}([0-9]{3}[0-9Xx])', '\1********\2', 'g'),
            '(1[3-9][0-9])[ -]?[0-9]{4}[ -]?([0-9]{4})', '\1****\2', 'g'),
        '([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@', '\1***@', 'g');
"""


def mask(value: object, field: str = "") -> str:
    """A personal value shown so a person can recognize its shape, not read it."""
    text = "" if value is None else str(value)
    if not text:
        return text
    if "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}"
    if field == "id_number" and len(text) > 8:  # the data layer's mask_id: 1101**********1234
        return text[:4] + "*" * (len(text) - 8) + text[-4:]
    if _DIGITS.match(text):
        return text[:3] + "*" * max(len(text) - 7, 1) + text[-4:] if len(text) >= 8 else "*" * len(text)
    if field == "name":
        return text[:1] + "*" * min(max(len(text) - 1, 1), 3)
    return text[:1] + "***"


def mask_if(value: object, personal: bool, field: str = "") -> str:
    return mask(value, field) if personal else ("" if value is None else str(value))


def for_settings(settings: Settings) -> Dictionary:
    """The dictionary ``[quality] dictionary`` names (relative to the config file), or the bundled one."""
    if not settings.quality.dictionary:
        return load_dictionary()
    path = Path(settings.quality.dictionary)
    return load_dictionary(path if path.is_absolute() else settings.base_dir / path)
