"""Each metric's zh/en label and help as i18n keys (``metric.<name>``, ``metric.<name>.help``), read from the
semantic layer's definitions (dashboard/metrics.toml), so a metric is named in one place only."""

from __future__ import annotations

import tomllib
from pathlib import Path

DEFINITIONS = Path(__file__).resolve().parents[1] / "metrics.toml"

# Explore's measures that are the layer's metrics (the same aggregate over the same rows): named by the
# metric's label, so a number has one name on every page (Explore's "revenue" is 赢单金额 / Won-deal amount).
EXPLORE_MEASURES = {
    "won": "won_deals",
    "revenue": "won_amount",
    "avg_won_amount": "avg_deal_size",
    "conversion_rate": "conversion_rate",
    "roi": "roi",
    "sum_cost": "spend",
}


def metric_texts() -> dict[str, dict[str, str]]:
    """lang → {"metric.<name>": label, "metric.<name>.help": help, and Explore's ``explore.measure.<m>`` of the
    measures that are metrics}; what is missing is the layer's error."""
    raw = tomllib.loads(DEFINITIONS.read_text(encoding="utf-8")).get("metrics", {})
    out: dict[str, dict[str, str]] = {"zh": {}, "en": {}}
    for name, metric in raw.items():
        for key, suffix in (("label", ""), ("help", ".help")):
            for lang, text in (metric.get(key) or {}).items():
                if lang in out:
                    out[lang][f"metric.{name}{suffix}"] = text
    for measure, name in EXPLORE_MEASURES.items():
        for words in out.values():
            if f"metric.{name}" in words:
                words[f"explore.measure.{measure}"] = words[f"metric.{name}"]
    return out
