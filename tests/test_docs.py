"""Every config key and every named query is documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from dashboard.config import QualityConfig, Settings, SourceConfig, TableConfig
from dashboard.warehouse import list_queries

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("model", [Settings, SourceConfig, TableConfig, QualityConfig])
def test_every_config_key_is_in_the_readme(model: type[BaseModel]) -> None:
    keys = [name for name, f in model.model_fields.items() if not f.exclude]
    forms = ("\n{k} = ", " {k} = ", "[{k}]", "[[{k}]]", "[[sources.{k}]]")
    missing = [k for k in keys if not any(form.format(k=k) in README for form in forms)]
    assert not missing, f"undocumented config keys: {missing}"


def test_every_query_is_in_the_readme() -> None:
    missing = [q for q in list_queries() if f"`{q}`" not in README]
    assert not missing


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
