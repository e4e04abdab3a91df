"""The Streamlit entry point: page config, the language switch, the warning banner and st.navigation."""

import streamlit as st

from dashboard.components.banner import show_banner
from dashboard.components.data import default_language
from dashboard.components.guard import user_errors
from dashboard.components.session import language_switch
from dashboard.i18n import Lang, t

# (file under pages/, icon); the first is the default page.
PAGES: tuple[tuple[str, str], ...] = (
    ("cockpit", ":material/dashboard:"),
    ("channels", ":material/campaign:"),
    ("customer_360", ":material/person_search:"),
    ("churn", ":material/trending_down:"),
    ("data_quality", ":material/fact_check:"),
    ("catalog", ":material/menu_book:"),
    ("explore", ":material/query_stats:"),
)


def pages(lang: Lang) -> list[st.Page]:
    return [
        st.Page(f"pages/{name}.py", title=t(f"page.{name}", lang), icon=icon, default=i == 0)
        for i, (name, icon) in enumerate(PAGES)
    ]


def run() -> None:
    st.set_page_config(page_icon=":material/dashboard:", layout="wide")
    lang = language_switch(default_language())
    page = st.navigation(pages(lang))
    with user_errors():
        show_banner(lang)
        page.run()


run()
