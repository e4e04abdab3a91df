"""渠道分析 Channels: lead volume over time, the funnel, channel economics and multi-touch
attribution under one filter bar (kept in the URL); choosing a channel drills down to its campaigns
and leads. Every table behind a chart downloads as CSV or Excel.
"""

import streamlit as st

from dashboard.components import data
from dashboard.components.attribution import MODELS, attribution_section, model_label, won_deals
from dashboard.components.channels import rows
from dashboard.components.drilldown import LEADS_LIMIT, drilldown
from dashboard.components.economics import economics_section
from dashboard.components.filterbar import current, filter_bar, options_by_kind, url_choice
from dashboard.components.frame import start_page
from dashboard.components.funnel import funnel_section
from dashboard.components.kpi import kpi_row, split_request, totals
from dashboard.components.tiles import today
from dashboard.components.volume import GRAINS, volume_section
from dashboard.i18n import t

LANG = start_page("channels")

options = data.query("filter_options", {"channel": current().channel})
filters = filter_bar(LANG, options_by_kind(options))
TILES = ("leads", "conversion_rate", "won_amount", "roi")  # the semantic layer's metrics, by name
ECONOMICS = ("spend", "leads", "cost_per_lead", "won_deals", "cac", "won_amount", "roi")
split = data.metrics(split_request(("won_amount", *ECONOMICS, "conversion_rate"), filters))  # by amount
economics = rows(split).select("channel", *ECONOMICS)
kpi_row(totals(split, TILES, filters), TILES, LANG)

st.subheader(t("volume.title", LANG))
grain = url_choice("grain", GRAINS, t("volume.grain", LANG), lambda g: t(f"grain.{g}", LANG), default="month")
volume = data.query("lead_volume", {**filters.params(), "grain": grain})
volume_section(volume, grain, filters, today(data.settings().timezone), LANG)

st.subheader(t("funnel.title", LANG))
funnel_section(data.query("funnel", filters.params()), filters, LANG)

st.subheader(t("economics.title", LANG))
economics_section(economics, split, filters, LANG)

st.subheader(t("attribution.title", LANG))
model = url_choice("model", MODELS, t("attribution.model", LANG), lambda m: model_label(m, LANG), default="linear")
attribution, won_amount = won_deals(filters)  # by win date, as attribution hands it out
attribution_section(attribution, won_amount, model, filters, LANG)

st.subheader(t("drill.title", LANG))
if filters.channel is None:
    st.info(t("drill.hint", LANG), icon=":material/ads_click:")
else:
    campaigns = data.query("campaign_summary", filters.params())
    leads = data.query("channel_leads", {**filters.params(), "limit": LEADS_LIMIT})
    drilldown(campaigns, leads, int(economics["leads"].sum()), filters, LANG)
