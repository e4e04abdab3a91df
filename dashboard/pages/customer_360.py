"""客户360 Customer 360: find a customer (typo-tolerant: name or pinyin, phone in any format, email,
company, customer key), then see them across every source: golden attributes with the source each
came from, tags, owner, key figures, linked records and the timeline. ``?customer=<key>`` opens a
profile directly (the churn list links here).
"""

import streamlit as st

from dashboard.components import customer_view as view
from dashboard.components import data
from dashboard.components.frame import start_page
from dashboard.i18n import t

LANG = start_page("customer_360")

view.search(LANG)
key = view.selected_key()
if key is None:
    st.info(t("c360.hint", LANG), icon=":material/person_search:")
    st.stop()

profile = data.query("customer_profile", {"customer_key": key})
if profile.is_empty():  # a key whose customer merged into another opens that customer, saying so
    moved = data.query("customer_redirect", {"customer_key": key})
    if not moved.is_empty():
        new_key = moved["customer_key"][0]
        st.info(t("c360.merged", LANG, old=key, customer=new_key), icon=":material/merge:")
        key = new_key
        st.query_params[view.PARAM] = key  # the address bar names the customer shown
        profile = data.query("customer_profile", {"customer_key": key})
if profile.is_empty():
    view.not_found(key, LANG)
    st.stop()
customer = profile.row(0, named=True)
view.header(customer, LANG, data.query("customer_churn", {"customer_key": key, "lang": LANG}))
view.key_figures(customer, LANG)
view.churn_risk(data.query("customer_churn", {"customer_key": key, "lang": LANG}), LANG)
left, right = st.columns([1, 1])
with left:
    view.attributes(data.query("customer_attributes", {"customer_key": key}), LANG)
with right:
    view.linked_records(data.query("identity_links", {"customer_key": key}), LANG)
view.timeline(data.query("customer_timeline", {"customer_key": key}), LANG, key)
