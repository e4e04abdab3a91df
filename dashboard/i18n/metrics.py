"""Each metric's zh/en label and help as i18n keys (``metric.<name>``, ``metric.<name>.help``), read from the
semantic layer's definitions (dashboard/metrics.toml), so a metric is named in one place only."""

from __future__ import annotations

import tomllib
from pathlib import Path

DEFINITIONS = Path(__file__).resolve().parents[1] / "metrics.toml"


def metric_texts() -> dict[str, dict[str, str]]:
    """lang → {"metric.<name>": label, "metric.<name>.help": help}; what is missing is the layer's error."""
    raw = tomllib.loads(DEFINITIONS.read_text(encoding="utf-8")).get("metrics", {})
    out: dict[str, dict[str, str]] = {"zh": {}, "en": {}}
    for name, metric in raw.items():
        for key, suffix in (("label", ""), ("help", ".help")):
            for lang, text in (metric.get(key) or {}).items():
                if lang in out:
                    out[lang][f"metric.{name}{suffix}"] = text
    return out
