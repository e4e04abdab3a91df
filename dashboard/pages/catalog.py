"""数据资产目录 Catalog: not built yet; the page says so and what it will show."""

from dashboard.components.frame import ensure_frame
from dashboard.components.placeholder import not_built

ensure_frame()
not_built("catalog")
