"""Makes sure every page runs inside app.py's frame (navigation, language switch, banner).

Streamlit still has its legacy mode for a ``pages/`` folder next to the entry script: until
``st.navigation`` has run once in the process (a deep link right after the server starts, and every
run in AppTest), it runs the page file alone. A page that finds itself in that mode turns it off and
reruns, so app.py draws the page. Internal API, pinned with streamlit==1.67.0.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def ensure_frame() -> None:
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
