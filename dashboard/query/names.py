"""What each view the SQL tab reads, and each of its fields, is called in a language: shown beside the
identifier a query types (the catalog page, the SQL tab), never instead of it."""

from __future__ import annotations

from dashboard.core.entities import ENTITIES
from dashboard.i18n import CATALOG, heading, t
from dashboard.i18n.values import VALUES


def view_name(relation: str, lang: str) -> str:
    """An entity's view by the entity's name (线索), a derived table by ``view.<name>`` (线索漏斗事实)."""
    if relation in ENTITIES:
        return VALUES["entity"][relation][lang]
    return t(f"view.{relation}", lang)


def field_name(column: str, lang: str, relation: str | None = None) -> str:
    """A field by ``field.<relation>.<name>`` where one table's column means something else than the pages' column
    of that name (churn_scores.revenue is the customer's order revenue, not a lead's won amount), else by its
    column's heading on the pages (渠道, 创建时间), or by ``field.<name>`` where no page shows it; the identifier
    when none names it (tests/test_names.py holds every field the SQL tab lists to a name in both languages)."""
    words = CATALOG[lang]
    own = words.get(f"field.{relation}.{column}") if relation else None
    return own or words.get(f"field.{column}") or heading(column, lang)
