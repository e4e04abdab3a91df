"""The one error shape: a CockpitError becomes ``st.error(err.message)``, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from dashboard.core.errors import CockpitError


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except CockpitError as err:
        st.error(err.message)
