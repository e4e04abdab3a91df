"""Publishing a quarantined snapshot builds the derived tables in a process of its own, as a refresh does
(``[engine] derive_in_child``, the default), and in the deciding process when that is off."""

from __future__ import annotations

import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.pipeline import derive, review
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.test_review import allow_actions, quarantine_crm


def _in_this_process_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the derived build ran in the deciding process")

    monkeypatch.setattr(derive, "build_derived", refuse)  # review imports it from there when it builds here


def test_publish_anyway_builds_the_derived_tables_in_a_child(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = allow_actions(company)
    assert settings.engine.derive_in_child
    sid = quarantine_crm(settings)
    before = Store(settings.data_path).read_manifest()["derived"]["build_id"]
    _in_this_process_fails(monkeypatch)
    review.publish_anyway(settings, "crm", sid, "phones are fixed upstream tomorrow", "alice")
    after = Store(settings.data_path).read_manifest()
    assert after["sources"]["crm"]["snapshot_id"] == sid and after["derived"]["build_id"] != before
    crm = "SELECT count(*) FROM leads WHERE source_system = 'crm'"
    assert Warehouse(settings).sql(crm, user=SYSTEM).item() == 25


def test_with_the_child_off_the_build_runs_here(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = allow_actions(company)
    cfg = settings.base_dir / "cockpit.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\n[engine]\nderive_in_child = false\n", encoding="utf-8")
    settings = load_settings(cfg)
    sid = quarantine_crm(settings)
    manifest = Store(settings.data_path).read_manifest()
    _in_this_process_fails(monkeypatch)
    with pytest.raises(AssertionError, match="deciding process"):
        review.publish_anyway(settings, "crm", sid, "phones are fixed upstream tomorrow", "alice")
    assert Store(settings.data_path).read_manifest()["sources"]["crm"] == manifest["sources"]["crm"]
