"""The filter bar the analytics pages share: period, channel, region, owner and campaign.

The filters live in a plain session key (so they survive page changes) and in the URL query string
(``?start=2026-03-01&end=2026-03-31&channel=paid_search``), so a filtered view can be bookmarked and
sent: a new session starts from the URL, and every run writes the current filters back to it.
A page applies only the filters it shows (the cockpit: the period): a region chosen on the channels page is
kept for when the user returns there, but never narrows a page that does not say so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl
import streamlit as st

from dashboard.components import labels
from dashboard.i18n import t

FIELDS: tuple[str, ...] = ("period", "channel", "region", "owner", "campaign")
CHOICES: tuple[str, ...] = ("channel", "region", "owner", "campaign")
STATE_KEY = "filters"
VIEW_KEY = "view"  # page choices kept in the URL too (grain, attribution model)
_WIDGET = "_fb_{}"
ALL = ""  # the "all" option of a choice (values from data are never empty)


@dataclass(frozen=True)
class Filters:
    start: date | None = None
    end: date | None = None
    channel: str | None = None
    region: str | None = None
    owner: str | None = None
    campaign: str | None = None

    def params(self) -> dict[str, Any]:
        """The six optional parameters the channel queries take."""
        return dataclasses.asdict(self)

    def period(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end}


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def from_query(query: Mapping[str, str]) -> Filters:
    """Filters from URL parameters; a period needs both ends, and a malformed date is ignored."""
    start, end = _date(query.get("start")), _date(query.get("end"))
    if start is None or end is None:
        start = end = None
    elif start > end:
        start, end = end, start
    choices = {name: (query.get(name) or "").strip() or None for name in CHOICES}
    return Filters(start=start, end=end, **choices)


def to_query(filters: Filters) -> dict[str, str]:
    """The URL parameters for the filters that are set (an unset filter is left out)."""
    values = {k: v.isoformat() if isinstance(v, date) else v for k, v in filters.params().items()}
    return {k: v for k, v in values.items() if v}


def shown_only(filters: Filters, fields: Sequence[str]) -> Filters:
    """``filters`` without the ones a page with ``fields`` does not show: what it may apply."""
    dropped: dict[str, Any] = {f: None for f in CHOICES if f not in fields}
    if "period" not in fields:
        dropped |= {"start": None, "end": None}
    return dataclasses.replace(filters, **dropped)


def current() -> Filters:
    """This session's filters; a new session (a page load, a bookmark) starts from the URL."""
    state = st.session_state.get(STATE_KEY)
    if not isinstance(state, Filters):
        state = from_query(st.query_params.to_dict())
        st.session_state[STATE_KEY] = state
    return state


def _update(**changes: Any) -> None:
    st.session_state[STATE_KEY] = dataclasses.replace(current(), **changes)


def set_channel(channel: str | None) -> None:
    """Narrow to one channel (a click on a chart); a campaign of another channel no longer applies."""
    _update(channel=channel, campaign=None)
    st.session_state[_WIDGET.format("channel")] = channel or ALL
    st.session_state[_WIDGET.format("campaign")] = ALL


def options_by_kind(options: pl.DataFrame) -> dict[str, list[str]]:
    """``filter_options`` rows (kind, value) as one list of values per filter."""
    return {kind: options.filter(pl.col("kind") == kind)["value"].to_list() for kind in CHOICES}


def _period_changed() -> None:
    picked = st.session_state[_WIDGET.format("period")]
    if len(picked) == 2:
        _update(start=picked[0], end=picked[1])
    elif not picked:
        _update(start=None, end=None)
    # one date picked: the user is still choosing the end; the old period stays until then


def _choice_changed(name: str) -> None:
    value = st.session_state[_WIDGET.format(name)] or None
    if name == "channel":
        set_channel(value)
    else:
        _update(**{name: value})


def _period_input(state: Filters, lang: str) -> None:
    st.date_input(
        t("filter.period", lang),
        value=[state.start, state.end] if state.start and state.end else [],
        key=_WIDGET.format("period"),
        on_change=_period_changed,
        format="YYYY-MM-DD",
        help=t("filter.period.help", lang),
    )


def _choice_input(name: str, state: Filters, values: Sequence[str], lang: str) -> None:
    chosen = getattr(state, name) or ALL
    options = [ALL, *values]
    if chosen not in options:
        options.append(chosen)  # a bookmarked value this snapshot lacks still shows, and still applies
    key = _WIDGET.format(name)
    if key not in st.session_state:
        st.session_state[key] = chosen
    all_label = t("filter.all", lang)
    coded = name in ("channel", "region")  # the others (owner, campaign) are names already
    st.selectbox(
        t(f"filter.{name}", lang),
        options,
        key=key,
        format_func=lambda v: (labels.value(name, v, lang) if coded else v) if v else all_label,
        on_change=_choice_changed,
        args=(name,),
    )


def write_url(params: Mapping[str, str | None]) -> None:
    """Set or remove URL parameters, touching only those that differ (each change is a message)."""
    for key, value in params.items():
        if value is None:
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != value:
            st.query_params[key] = value


def filter_bar(lang: str, options: Mapping[str, Sequence[str]], fields: Sequence[str] = FIELDS) -> Filters:
    """Draw the chosen filters in one row and return the filters in force."""
    state = current()
    widths = [2 if f == "period" else 1 for f in fields]
    if sum(widths) < 6:
        widths.append(6 - sum(widths))  # a lone period picker keeps a sensible width
    for column, field in zip(st.columns(widths), fields, strict=False):
        with column:
            if field == "period":
                _period_input(state, lang)
            else:
                _choice_input(field, state, options.get(field, ()), lang)
    state = current()
    shown = {"start", "end"} if "period" in fields else set()
    shown |= {f for f in fields if f in CHOICES}
    url = to_query(state)
    write_url({key: url.get(key) for key in shown})
    return shown_only(state, fields)


def url_choice(
    param: str, options: Sequence[str], label: str, format_func: Callable[[str], str], default: str | None = None
) -> str:
    """A horizontal radio whose choice is kept in the session and in the URL (left out when default)."""
    fallback = default or options[0]
    views: dict[str, str] = st.session_state.setdefault(VIEW_KEY, {})
    if views.get(param) not in options:
        asked = st.query_params.get(param, "")
        views[param] = asked if asked in options else fallback
    key = f"_view_{param}"
    if key not in st.session_state:
        st.session_state[key] = views[param]

    def remember() -> None:
        views[param] = st.session_state[key]

    value: str = st.radio(label, options, key=key, format_func=format_func, horizontal=True, on_change=remember)
    write_url({param: None if value == fallback else value})
    return value
