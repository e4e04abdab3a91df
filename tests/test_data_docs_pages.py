"""Data Docs after a refresh of one source (issue 22): only that source's suites are rendered again, the
other suites' pages are kept as they were, and the site holds the same files with the same pages as one
rendered whole from the same latest attempts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from dashboard.core.config import Settings
from dashboard.core.store import Store, write_json
from dashboard.pipeline.data_docs import STATUS_FILE, build_data_docs, site_dir, site_status
from dashboard.pipeline.refresh import refresh

# what differs between two renderings of one page: the build time on the logo's address, random element ids
BUILT = re.compile(r"\?d=\d{8}T[\d.]+Z|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _pages(site: Path) -> dict[str, tuple[int, str]]:
    """page → (file time, text without what differs between two renderings)."""
    return {
        p.relative_to(site).as_posix(): (p.stat().st_mtime_ns, BUILT.sub("", p.read_text(encoding="utf-8")))
        for p in site.rglob("*.html")
    }


def test_a_refresh_of_one_source_renders_only_its_suites(company: Settings) -> None:
    store = Store(company.data_path)
    before = _pages(site_dir(store))
    leads = company.base_dir / "imports" / "crm" / "leads.csv"
    leads.write_text(leads.read_text(encoding="utf-8") + "CRM-NEW-1,2026-03-02,SEM,13800138001\n", encoding="utf-8")
    assert refresh(company, ["crm"]).exit_code == 0
    after = _pages(site_dir(store))

    crm = {p for p in after if p.startswith(("validations/crm/", "expectations/crm/"))}
    others = {p for p in after if p.endswith(".html") and p not in crm and p != "index.html"}
    assert crm and others
    assert {p: after[p] for p in others} == {p: before[p] for p in others}  # not rendered again: same file time
    assert not {p for p in before if p.startswith("validations/crm/")} & crm  # the new attempt's pages only
    assert len([p for p in crm if p.startswith("validations/crm/leads/")]) == 1
    assert after["index.html"][0] != before["index.html"][0]
    status = site_status(store)
    assert status is not None and status["error"] is None and "crm.leads" in status["suites"]

    # the same latest attempts rendered whole: the same files, the same pages
    whole = company.data_path / "whole"
    shutil.copytree(site_dir(store), whole)
    write_json(site_dir(store) / STATUS_FILE, {**status, "made_from": "", "pages": {}})
    build_data_docs(company, store)
    rendered = _pages(site_dir(store))
    assert sorted(rendered) == sorted(_pages(whole))
    assert {p: text for p, (_, text) in rendered.items()} == {p: text for p, (_, text) in _pages(whole).items()}
    assert all(rendered[p][0] != after[p][0] for p in others)  # this time every page was made again
