"""What each view the SQL tab reads, each of its fields, and each named query is called in a language: shown
beside the identifier a query types or ``cockpit query NAME`` takes (the catalog page, the SQL tab), never instead
of it."""

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


# a named query that a page already titles is called by that title, every other by ``query.<name>``: its own
# words, never a table's or a view's (the lineage draws a query beside the tables it reads: filter_options, which
# offers a channel's campaigns of filter_values, read 筛选项取值 as the table beside it; tests/test_names.py)
_QUERY_TEXT = {
    "attribution": "attribution.title",
    "channel_economics": "economics.title",
    "consent_counts": "consent.catalog.title",
    "customer_churn": "c360.risk.title",
    "data_health": "tiles.health",
    "funnel": "funnel.title",
    "lead_volume": "volume.title",
    "receivables_overdue": "tiles.overdue",
    "sales_leaderboard": "tiles.leaderboard_title",
    "validation_history": "dq.tab.history",
}


def query_name(query: str, lang: str) -> str:
    """A named query (``queries/<name>.sql``) by the title of what shows it (转化漏斗), else ``query.<name>``."""
    return t(_QUERY_TEXT.get(query, f"query.{query}"), lang)
