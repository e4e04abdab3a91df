"""自助分析 Explore: not built yet; the page says so and what it will show."""

from dashboard.components.frame import ensure_frame
from dashboard.components.placeholder import not_built

ensure_frame()
not_built("explore")
