"""Every config key and every named query is documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from dashboard.core.config import Settings
from dashboard.query.warehouse import list_queries

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The settings model and every section model under it (tables of tables included)."""
    found = [model]
    for field in model.model_fields.values():
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for inner in (arg, *getattr(arg, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in found:
                    found += [m for m in _models(inner) if m not in found]
    return found


@pytest.mark.parametrize("model", _models(Settings), ids=lambda m: m.__name__)
def test_every_config_key_is_in_the_readme(model: type[BaseModel]) -> None:
    keys = [name for name, f in model.model_fields.items() if not f.exclude]
    forms = ("\n{k} = ", " {k} = ", "[{k}]", "[[{k}]]", "[[sources.{k}]]", ".{k}]")
    missing = [k for k in keys if not any(form.format(k=k) in README for form in forms)]
    assert not missing, f"undocumented config keys: {missing}"


def test_every_query_is_in_the_readme() -> None:
    missing = [q for q in list_queries() if f"`{q}`" not in README]
    assert not missing


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
