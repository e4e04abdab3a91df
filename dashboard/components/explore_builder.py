"""Explore's controls: the model, dimensions, measures and filters, and the saved and shared views.

The view lives in a plain session key (it survives page changes) and in the URL (``?view=<token>``):
a new session starts from the URL, so a copied address rebuilds the view for whoever opens it, with
their own role's rows and masking. Widgets are drawn from the view and write back to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import streamlit as st

from dashboard.components import data, labels
from dashboard.components.filterbar import write_url
from dashboard.core.errors import CockpitError
from dashboard.i18n import CATALOG, t
from dashboard.query.explore import models as explore
from dashboard.query.explore import views as explore_views
from dashboard.query.explore.models import GRAINS, MODELS, OPS, Dim, ExploreError, Filter, Spec

SPEC_KEY = "explore_spec"
URL_PARAM = "view"
DEFAULT = Spec("leads", (Dim("channel"),), ("count",))
_K = {k: f"_ex_{k}" for k in ("model", "dims", "measures", "pivot", "chart", "fcol", "fop", "fvals", "flo", "fhi")}
_NOTICE = "_ex_notice"
_LANG = "_ex_lang"  # the language the controls were last drawn in
_INPUTS = ("_ex_fcol", "_ex_fop", "_ex_fvals", "_ex_flo", "_ex_fhi", "_ex_asof_source")  # a filter being typed
_SAVE_NAME, _SAVED = "_ex_save_name", "_ex_saved_notice"


# -- labels -------------------------------------------------------------------------------------
def col_label(name: str, lang: str) -> str:
    words = CATALOG[lang]
    return words.get(f"explore.col.{name}") or words.get(f"col.{name}", name)


def dim_label(key: str, lang: str) -> str:
    base, _, grain = key.rpartition("_")
    if base and grain in GRAINS:
        return f"{col_label(base, lang)} · {t(f'explore.grain.{grain}', lang)}"
    return col_label(key, lang)


def measure_label(name: str, lang: str, model: str | None = None) -> str:
    """A measure's name; a count says what it counts in ``model`` (线索数 / Leads in the leads model, as the
    cockpit calls the same number) where the catalog names it (explore.measure.count.<model>)."""
    own = f"explore.measure.{name}.{model}"
    return t(own if model and own in CATALOG[lang] else f"explore.measure.{name}", lang)


def label(column: str, lang: str, model: str | None = None) -> str:
    """A result column's heading: a measure (of ``model``), a dimension, or a compared measure (``_as_of``,
    ``_change``)."""
    for suffix in ("_as_of", "_change"):
        if column.endswith(suffix) and f"explore.measure.{column.removesuffix(suffix)}" in CATALOG[lang]:
            return f"{measure_label(column.removesuffix(suffix), lang, model)} · {t(f'explore.{suffix[1:]}', lang)}"
    if f"explore.measure.{column}" in CATALOG[lang]:
        return measure_label(column, lang, model)
    return dim_label(column, lang)


def value_dictionary(model: str, column: str) -> str | None:
    """The value dictionary naming a model column's codes: the model's own (an order's status), else the one its
    name says (channel)."""
    own = MODELS[model].columns.get(column) if model in MODELS else None
    return (own.labels if own else None) or labels.COLUMNS.get(column)


def _value_name(model: str, column: str, value: object, lang: str) -> str:
    """A coded value by its name (搜索推广 for paid_search, 已完成 for an order's status C); others as they are."""
    dimension = value_dictionary(model, column)
    return labels.value(dimension, value, lang) if dimension else str(value)


def filter_label(model: str, f: Filter, lang: str) -> str:
    """``Channel in Paid search, website`` in the page's language."""
    values = [
        v.isoformat() if isinstance(v, date) else _value_name(model, f.column, v, lang)
        for v in f.values
        if v is not None
    ]
    if f.op == "between":
        lo, hi = (v.isoformat() if isinstance(v, date) else ("…" if v is None else str(v)) for v in f.values)
        values = [f"{lo} – {hi}"]
    return f"{col_label(f.column, lang)} {t(f'explore.op.{f.op}', lang)} {', '.join(values)}".strip()


# -- the view in the session and the URL ----------------------------------------------------------
def current() -> Spec:
    """This session's view; a new session starts from the URL's view (or the default)."""
    spec = st.session_state.get(SPEC_KEY)
    if isinstance(spec, Spec):
        return spec
    spec = DEFAULT
    token = st.query_params.get(URL_PARAM)
    if token:
        try:
            spec = explore.decode(token)
        except ExploreError as e:
            st.session_state[_NOTICE] = e.message
    load(spec)
    return spec


def load(spec: Spec) -> None:
    """Make ``spec`` the view and set every control to it."""
    st.session_state[SPEC_KEY] = spec
    st.session_state[_K["model"]] = spec.model
    st.session_state[_K["dims"]] = [d.key for d in spec.dims]
    st.session_state[_K["measures"]] = list(spec.measures)
    st.session_state[_K["pivot"]] = spec.pivot or ""
    st.session_state[_K["chart"]] = spec.chart or ""


def remember(spec: Spec) -> None:
    """Keep the final view (the chart chosen too) and write it to the URL."""
    st.session_state[SPEC_KEY] = spec
    write_url({URL_PARAM: explore.encode(spec)})


def _follow_language(lang: str) -> None:
    """Streamlit's select boxes keep showing the option texts they were drawn with; after a language change
    they are set again from the view, so the chosen data, dimensions and measures read in the new language
    (a half-typed filter starts over)."""
    previous = st.session_state.get(_LANG)
    st.session_state[_LANG] = lang
    if previous is None or previous == lang:
        return
    for key in [k for k in st.session_state if str(k).startswith(_INPUTS)]:
        del st.session_state[key]
    load(current())


def _model_changed() -> None:
    model = st.session_state[_K["model"]]
    load(Spec(model, (), ("count",)))


def _set_filters(filters: Sequence[Filter]) -> None:
    spec = current()
    st.session_state[SPEC_KEY] = Spec(spec.model, spec.dims, spec.measures, tuple(filters), spec.pivot, spec.chart)


# -- the controls -------------------------------------------------------------------------------
def builder(lang: str) -> Spec:
    """Draw the controls; return the view they describe (checked against its model)."""
    spec = current()
    _follow_language(lang)
    notice = st.session_state.pop(_NOTICE, None)
    if notice:
        st.error(notice)
    for name, value in (("model", spec.model), ("dims", [d.key for d in spec.dims]), ("measures", list(spec.measures))):
        st.session_state.setdefault(_K[name], value)
    model = MODELS[spec.model]
    # thirds: a fifth of the page cut the Data box's longer names at 1600 px ("Customers (golden record, RFM,
    # churn)"), and the two lists wrap their chosen items onto more lines instead
    left, middle, right = st.columns(3)
    with left:
        st.selectbox(
            t("explore.model", lang),
            list(MODELS),
            key=_K["model"],
            format_func=lambda m: t(f"explore.model.{m}", lang),
            on_change=_model_changed,
        )
    with middle:
        dims = st.multiselect(
            t("explore.dims", lang),
            explore.dim_keys(model),
            key=_K["dims"],
            format_func=lambda k: dim_label(k, lang),
            max_selections=3,
            placeholder=t("explore.dims.none", lang),
        )
    with right:
        shown = [m for m in model.measures if m not in explore.withheld(data.user().role)]
        st.session_state[_K["measures"]] = [m for m in st.session_state.get(_K["measures"], []) if m in shown]
        measures = st.multiselect(
            t("explore.measures", lang),
            shown,
            key=_K["measures"],
            format_func=lambda m: measure_label(m, lang, model.name),
        )
    pivot = None
    if len(dims) >= 2:
        st.session_state.setdefault(_K["pivot"], spec.pivot or "")
        if st.session_state[_K["pivot"]] not in ["", *dims]:
            st.session_state[_K["pivot"]] = ""
        pivot = st.selectbox(
            t("explore.pivot", lang),
            ["", *dims],
            key=_K["pivot"],
            format_func=lambda k: dim_label(k, lang) if k else t("explore.pivot.none", lang),
        )
    _filters(spec, lang)
    spec = current()
    chosen = Spec(
        spec.model,
        tuple(explore.parse_dim(model, k) for k in dims),
        tuple(measures),
        spec.filters,
        pivot or None,
        spec.chart,
    )
    return explore.validate(chosen)


def _filters(spec: Spec, lang: str) -> None:
    model = MODELS[spec.model]
    title = t("explore.filters", lang) + (f" ({len(spec.filters)})" if spec.filters else "")
    with st.expander(title, expanded=bool(spec.filters), icon=":material/filter_alt:"):
        for i, f in enumerate(spec.filters):
            text, remove = st.columns([6, 1], vertical_alignment="center")
            text.text(filter_label(spec.model, f, lang))
            remove.button(
                t("explore.filter.remove", lang),
                key=f"_ex_rm_{i}",
                on_click=_set_filters,
                args=([g for j, g in enumerate(spec.filters) if j != i],),
                type="tertiary",
                icon=":material/close:",
            )
        column_pick, op_pick, value_pick, add = st.columns([2, 2, 4, 1], vertical_alignment="bottom")
        with column_pick:
            column = st.selectbox(
                t("explore.filter.column", lang),
                list(model.columns),
                key=_K["fcol"],
                format_func=lambda c: col_label(c, lang),
            )
        kind = model.columns[column].kind
        with op_pick:
            op = st.selectbox(
                t("explore.filter.op", lang),
                OPS[kind],
                key=f"{_K['fop']}_{kind}",
                format_func=lambda o: t(f"explore.op.{o}", lang),
            )
        with value_pick:
            values = _value_input(spec.model, column, kind, op, lang)
        add.button(
            t("explore.filter.add", lang),
            key="_ex_add",
            on_click=_add_filter,
            args=(Filter(column, op, values),),
            icon=":material/add:",
        )


def _value_input(model: str, column: str, kind: str, op: str, lang: str) -> tuple[Any, ...]:
    key = f"{model}_{column}_{op}"
    if op in ("is_null", "not_null"):
        st.caption(t("explore.filter.no_value", lang))
        return ()
    if op == "contains":
        return (st.text_input(t("explore.filter.text", lang), key=f"{_K['fvals']}_{key}", max_chars=200),)
    if op == "between":
        lo, hi = st.columns(2)
        widget = st.date_input if kind == "date" else st.number_input
        with lo:
            low = widget(t("explore.filter.from", lang), value=None, key=f"{_K['flo']}_{key}")
        with hi:
            high = widget(t("explore.filter.to", lang), value=None, key=f"{_K['fhi']}_{key}")
        return (low, high)
    options = ["true", "false"] if kind == "bool" else _choices(model, column)
    picked = st.multiselect(
        t("explore.filter.values", lang),
        options,
        key=f"{_K['fvals']}_{key}",
        accept_new_options=kind != "bool",
        format_func=lambda v: _value_name(model, column, v, lang),
    )
    return tuple(picked)


def _choices(model: str, column: str) -> list[str]:
    """The column's values as this user sees them (at most 200), for the list filter."""
    query = explore.values_query(model, column)
    try:
        return [str(v) for v in data.explore(query.sql, query.params)["value"].to_list()]
    except CockpitError:
        return []


def _add_filter(f: Filter) -> None:
    spec = current()
    try:
        checked = explore.validate(Spec(spec.model, (), ("count",), (f,)))
    except ExploreError as e:
        st.session_state[_NOTICE] = e.message
        return
    _set_filters([*spec.filters, *checked.filters])


# -- saved and shared views ---------------------------------------------------------------------
def saved_views(spec: Spec, lang: str) -> None:
    """Save the view under a name, reopen or delete a saved one, and the link that shares it."""
    who, cfg = data.user(), data.settings()
    views = explore_views.load_views(cfg, who.username)
    save, reopen = st.columns(2)
    with save:
        st.text_input(t("explore.save.name", lang), max_chars=explore_views.MAX_NAME, key=_SAVE_NAME)
        st.button(t("explore.save", lang), icon=":material/bookmark_add:", on_click=_save, args=(spec, lang))
        saved = st.session_state.pop(_SAVED, None)
        if saved:
            st.success(saved)
    with reopen:
        if views:
            chosen = st.selectbox(t("explore.saved_views", lang), sorted(views), key="_ex_saved")
            opened, deleted = st.columns(2)
            opened.button(t("explore.open", lang), on_click=_open, args=(chosen,), icon=":material/folder_open:")
            deleted.button(
                t("explore.delete", lang), on_click=_delete, args=(chosen,), icon=":material/delete:", type="tertiary"
            )
        else:
            st.caption(t("explore.no_saved", lang))
    st.caption(t("explore.share", lang))
    st.code(f"{_base_url()}?{URL_PARAM}={explore.encode(spec)}", language=None, wrap_lines=True)


def _base_url() -> str:
    try:
        url = st.context.url
    except Exception:  # no browser connection (AppTest, bare mode)
        url = None
    return str(url).split("?")[0] if url else ""


def _save(spec: Spec, lang: str) -> None:
    """A click's callback (it runs before the page, so the list below already shows the new view)."""
    name = str(st.session_state.get(_SAVE_NAME) or "")
    try:
        explore_views.save_view(data.settings(), data.user().username, name, spec)
    except ExploreError as e:
        st.session_state[_NOTICE] = e.message
        return
    st.session_state[_SAVED] = t("explore.saved", lang, name=name.strip())


def _open(name: str) -> None:
    try:
        load(explore_views.open_view(data.settings(), data.user().username, name))
    except ExploreError as e:
        st.session_state[_NOTICE] = e.message


def _delete(name: str) -> None:
    explore_views.delete_view(data.settings(), data.user().username, name)
