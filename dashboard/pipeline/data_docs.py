"""Great Expectations Data Docs of the latest validations, built to ``runs/data_docs/``.

The site is kept small: one suite and one validation result per source × entity, from the latest
attempt of each source. Results are rebuilt from the run history (``runs/attempts/``), so the site
never needs the data itself, and sample values are masked where the field is personal.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from dashboard.core.config import Settings
from dashboard.core.dictionary import Dictionary, for_settings, mask_if
from dashboard.core.store import Store, now_utc, write_json
from dashboard.pipeline import fingerprint

SITE = "data_docs"
STATUS_FILE = "cockpit.json"  # what was built when, or why it failed; the page reads it


def site_dir(store: Store) -> Path:
    return store.runs / SITE


def site_status(store: Store) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = json.loads((site_dir(store) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return status


def _latest_runs(settings: Settings, store: Store) -> dict[str, dict[str, Any]]:
    """suite name (source.entity) → {attempt, outcomes} of the latest attempt that ran expectations."""
    out: dict[str, dict[str, Any]] = {}
    for source in settings.source_names:
        for attempt in store.attempts(source, limit=1):
            by_entity: dict[str, list[dict[str, Any]]] = {}
            for o in attempt.get("expectations") or []:
                by_entity.setdefault(str(o["suite"]).rsplit(".", 1)[-1], []).append(o)
            for entity, outcomes in by_entity.items():
                out[f"{source}.{entity}"] = {"attempt": attempt, "entity": entity, "outcomes": outcomes}
    return out


def _result(name: str, run: dict[str, Any], dictionary: Dictionary) -> Any:
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    results = []
    for o in run["outcomes"]:
        kwargs = {**(o.get("kwargs") or {}), **({"column": o["column"]} if o.get("column") else {})}
        personal = dictionary.personal(run["entity"], str(o.get("column")))
        detail: dict[str, Any] = {"observed_value": o.get("observed")}
        if o.get("unexpected_count") is not None:
            detail = {
                "element_count": o.get("element_count"),
                "unexpected_count": o.get("unexpected_count"),
                "unexpected_percent": o.get("unexpected_percent"),
                "partial_unexpected_list": [mask_if(v, personal, str(o.get("column"))) for v in o.get("samples") or []],
            }
        config = ExpectationConfiguration(type=o["expectation"], kwargs=kwargs, meta={"blocking": o.get("blocking")})
        results.append(
            ExpectationValidationResult(success=bool(o.get("success")), expectation_config=config, result=detail)
        )
    passed = sum(1 for r in results if r.success)
    attempt = run["attempt"]
    return ExpectationSuiteValidationResult(
        success=passed == len(results),
        results=results,
        suite_name=name,
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(results) - passed,
            "success_percent": 100.0 * passed / len(results) if results else None,
        },
        meta={
            "run_id": {"run_name": attempt["snapshot_id"], "run_time": attempt.get("finished_at")},
            "active_batch_definition": {"datasource_name": attempt["source"], "data_asset_name": run["entity"]},
            "cockpit_status": attempt.get("status"),
        },
    )


def build_data_docs(settings: Settings, store: Store) -> dict[str, Any]:
    """Rebuild the site; returns (and writes) its status. A GX failure is recorded, not raised:
    the snapshots are already published when the site is built. A site built from the same latest attempts
    (a refresh that read no source) is kept as it is; otherwise only the suites whose latest attempt changed
    are rendered again (with the index), the other suites' pages copied from the current site."""
    target = site_dir(store)
    runs = _latest_runs(settings, store)
    made_from = _made_from(settings, runs)
    current = site_status(store)
    if current and current.get("made_from") == made_from and not current.get("error"):
        return current
    pages = _pages(settings, runs)
    work = store.runs / f".{SITE}.new"
    shutil.rmtree(work, ignore_errors=True)
    kept = _keep_pages(current, pages, target, work)
    status: dict[str, Any] = {
        "built_at": now_utc().isoformat(), "suites": [], "error": None, "made_from": made_from, "pages": pages
    }  # fmt: skip
    try:
        status["suites"] = _build(settings, store, work, runs, kept)
    except Exception as e:  # GX's own errors are many and untyped; the page shows this message
        status["error"] = f"{type(e).__name__}: {e}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    write_json(work / STATUS_FILE, status)
    old = store.runs / f".{SITE}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    work.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return status


def _made_from(settings: Settings, runs: dict[str, dict[str, Any]]) -> str:
    """What a site shows: each suite's latest attempt, with the code and settings that render it."""
    shown = sorted(
        (name, *(str(run["attempt"].get(k)) for k in ("snapshot_id", "finished_at", "status")))
        for name, run in runs.items()
    )
    return fingerprint.digest(fingerprint.code_version(), fingerprint.settings_version(settings), shown)


def _pages(settings: Settings, runs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each suite's pages by what they show: its latest attempt, with the code and settings that render it."""
    made_by = (fingerprint.code_version(), fingerprint.settings_version(settings))
    return {
        name: fingerprint.digest(
            *made_by, [str(run["attempt"].get(k)) for k in ("snapshot_id", "finished_at", "status")]
        )
        for name, run in runs.items()
    }


def _keep_pages(current: dict[str, Any] | None, pages: dict[str, str], target: Path, work: Path) -> set[str]:
    """The suites whose pages the current site already shows as they would be made now: the site is copied to
    ``work`` without the other suites' pages. Nothing is kept from a site that failed or has no page list."""
    shown = (current or {}).get("pages") or {}
    kept = {name for name, made in pages.items() if shown.get(name) == made}
    if current is None or current.get("error") or not kept or not target.is_dir():
        return set()
    shutil.copytree(target, work)
    (work / STATUS_FILE).unlink(missing_ok=True)
    for name in set(shown) - kept:  # changed or gone: their pages are made again or not at all
        source, entity = name.split(".", 1)
        shutil.rmtree(work / "validations" / source / entity, ignore_errors=True)
        (work / "expectations" / source / f"{entity}.html").unlink(missing_ok=True)
    return kept


def _build(settings: Settings, store: Store, work: Path, runs: dict[str, dict[str, Any]], kept: set[str]) -> list[str]:
    import great_expectations as gx
    from great_expectations.core import ExpectationSuite
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    for site in list(context.get_site_names()):
        context.delete_data_docs_site(site)
    backend = {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(work)}
    index = {"class_name": "DefaultSiteIndexBuilder"}
    context.add_data_docs_site(
        "cockpit", {"class_name": "SiteBuilder", "store_backend": backend, "site_index_builder": index}
    )
    dictionary = for_settings(settings)
    render: list[Any] = []  # the changed suites' pages; the index lists every suite
    for name, run in sorted(runs.items()):
        result = _result(name, run, dictionary)
        context.suites.add(ExpectationSuite(name=name, expectations=[r.expectation_config for r in result.results]))
        attempt = run["attempt"]
        suite_key = ExpectationSuiteIdentifier(name=name)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=suite_key,
            run_id=RunIdentifier(run_name=attempt["snapshot_id"], run_time=attempt.get("finished_at")),
            batch_identifier=name,
        )
        context.validation_results_store.set(key, result)
        if name not in kept:
            render += [suite_key, key]
    # GX renders every page when given no list; with every suite kept (one gone), the index alone is new
    context.build_data_docs(site_names=["cockpit"], resource_identifiers=render or None, build_index=True)
    return sorted(runs)
