"""流失预警 Churn: the customers most likely to stop buying, ranked by the revenue that puts at risk,
with the reasons behind each score; every row opens the customer's Customer 360 profile. The model
card says how the scores were validated against two simple baselines."""

import streamlit as st

from dashboard.components import churn_cards, churn_view, consent_view, data
from dashboard.components.export_buttons import export_buttons
from dashboard.components.frame import start_page
from dashboard.i18n import t

LANG = start_page("churn")
churn_cards.measured_afresh(LANG)  # after a language switch, a reload: the grid wraps the new language's text

card = data.query("churn_model_card")
if card.is_empty() or card["status"][0] == "no_activity":
    st.info(t("churn.no_activity", LANG), icon=":material/hourglass_empty:")
    st.stop()

chosen = churn_view.filter_row(data.query("churn_options"), LANG)
scope = {k: chosen[k] for k in ("owner", "region", "segment")}
bands = data.query("churn_bands", scope)
churn_view.band_tiles(bands, LANG)

st.subheader(t("churn.list.title", LANG))
params = {**scope, "band": chosen["band"], "lang": LANG, "limit": churn_view.LIST_LIMIT}
ranked = churn_view.own_ranks(data.query("churn_list", params))
warnings, no_consent = consent_view.split(ranked)  # the outreach list leaves out who said no to marketing
total = churn_view.in_scope(bands, chosen["band"])  # the caption counts what the tiles count
st.caption(churn_view.list_caption(total, warnings.height, no_consent.height, chosen["band"], LANG))
if warnings.height:  # none: the caption's count says so, no empty grid under it
    churn_cards.narrow_or_wide()  # the grid on a wide screen, cards on a phone or a tablet
    with st.container(key=churn_cards.GRID_KEY):
        churn_view.warning_list(warnings, LANG)
    churn_cards.cards(warnings, LANG)
    exported = churn_view.export_frame(warnings)  # rounded to what the list shows
    export_buttons(exported, "churn_warnings", churn_view.export_title(chosen, LANG), None, LANG, ())
consent_view.left_out_section(no_consent, LANG)

st.subheader(t("churn.card.title", LANG))
churn_view.model_card(card, data.query("churn_bands"), LANG, data.settings().timezone)
