"""Reusable dashboard pieces: the cached data access, KPI tiles, charts, banners and filters.

Pages call these; only this package (and ``app.py`` and ``pages/``) imports streamlit.
"""
