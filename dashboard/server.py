"""What `cockpit serve` runs: Streamlit's web app around app.py, plus ``/healthz`` (200 while page runs
keep finishing, 503 when one is stuck; dashboard/ops/watchdog.py) and systemd's watchdog feed."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dashboard.ops import watchdog


async def healthz(request: Request) -> JSONResponse:
    health = watchdog.PROGRESS.health()
    return JSONResponse(health.as_dict(), status_code=200 if health.healthy else 503)


watchdog.feed_systemd()
app = st.App(Path(__file__).with_name("app.py"), routes=[Route("/healthz", healthz)])
