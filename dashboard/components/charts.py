"""How every Plotly chart is laid out and drawn: one look in the office, a dark one on the big screen.

A chart's title is drawn above it as page text, not inside the figure: page text wraps on a phone
(Plotly cuts a long title off) and the chart's toolbar, which Plotly draws over the figure's top right
corner, can never cover it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from dashboard.components import fmt, labels

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d")
KIOSK_FONT_SIZE = 22
KIOSK_FONT = {"size": KIOSK_FONT_SIZE, "color": "#f5f7fa"}
KIOSK_HEIGHT = 300  # one row of charts under two rows of tiles on a 1080p wall


def layout(fig: go.Figure, title: str, kiosk: bool = False, height: int | None = None) -> go.Figure:
    fig.update_layout(
        title=title,
        colorway=list(PALETTE),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        # top left, clear of the toolbar (top right); it takes more rows on a narrow screen
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "xanchor": "left"},
        height=height,
    )
    if kiosk:  # legible from three metres: big type, light on dark, no grid noise
        fig.update_layout(
            template="plotly_dark",
            font=KIOSK_FONT,
            title_font={"size": 30},
            paper_bgcolor="rgba(0,0,0,0)",
            plot_bgcolor="rgba(0,0,0,0)",
        )
        fig.update_xaxes(showgrid=False)
        fig.update_yaxes(gridcolor="#2a3342")
    return fig


def name_categories(fig: go.Figure, dimension: str, codes: list[str], lang: str, axis: str = "x") -> go.Figure:
    """Category ticks drawn by their labels, while the points keep their codes (a click still names the code)."""
    ticks = {"tickmode": "array", "tickvals": codes, "ticktext": [labels.value(dimension, c, lang) for c in codes]}
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(**ticks)
    return fig


def local_dates(fig: go.Figure, lang: str, grain: str = "day", axis: str = "x") -> go.Figure:
    """A date axis in the page's language: 2025年1月 / Jan 2025 for months, 1月5日 / Jan 5 for days."""
    months = {"zh": "%Y年%-m月", "en": "%b %Y"}
    days = {"zh": "%-m月%-d日<br>%Y", "en": "%b %-d<br>%Y"}
    ticks = (months if grain == "month" else days)[lang if lang in months else "en"]
    hover = {"zh": "%Y年%-m月%-d日", "en": "%Y-%m-%d"}[lang if lang in months else "en"]
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(tickformat=ticks, hoverformat=hover)
    return fig


def clicked(event: Mapping[str, Any] | None, field: str = "x") -> str | None:
    """The value (``x`` by default) of the first point a chart selection event names, if any."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    value = points[0].get(field) if points else None
    return None if value is None else str(value)


def show(fig: go.Figure, key: str, kiosk: bool = False, on_click: Callable[[], None] | None = None) -> None:
    """Draw a chart, its title above it as a heading (taken out of ``fig``); with ``on_click``, clicking a
    bar or point calls it (before the page reruns). On the big screen: no toolbar, one row's height."""
    title = fig.layout.title.text
    if title:
        fig.update_layout(title=None, margin_t=10 if kiosk else 30)
        st.markdown(f"**{fmt.md_escape(title)}**")  # our label, maybe naming a channel: shown literally
    config: dict[str, Any] = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
    if kiosk:  # nobody clicks a wall
        config["displayModeBar"] = False
        scale = kiosk_scale()
        # every figure on a bar at the wall's one size: Plotly would shrink a label to its bar's thickness,
        # so a leaderboard's labels inside their bars were smaller than the ones beside the short bars
        size = KIOSK_FONT_SIZE * scale
        fig.update_layout(height=KIOSK_HEIGHT * scale, font_size=size, uniformtext={"minsize": size, "mode": "show"})
        fig.update_layout(margin={side: (fig.layout.margin[side] or 0) * scale for side in ("l", "r", "b")})
        st.plotly_chart(fig, width="stretch", key=key, theme=None, config=config)
    elif on_click is None:
        st.plotly_chart(fig, width="stretch", key=key, config=config)
    else:
        st.plotly_chart(fig, width="stretch", key=key, config=config, on_select=on_click, selection_mode="points")


def kiosk_scale() -> int:
    """How many times larger the big screen draws its charts: ``?kiosk=1&scale=2`` on a 4K wall shown at
    100 % (the page's text doubles by itself from 2560 px wide; a chart's pixel sizes must be told)."""
    raw = st.query_params.get("scale", "1")
    return int(raw) if raw in ("1", "2", "3") else 1
