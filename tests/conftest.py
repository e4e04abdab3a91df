"""Shared fixtures: a messy multi-format company, refreshed once per session; no developer config leaks in."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from dashboard.core.config import AS_OF_ENV, CONFIG_ENV, EngineConfig, Settings, load_settings, today
from tests import dbserver
from tests.cpu_record import pytest_runtest_makereport, pytest_runtest_setup  # noqa: F401  (each test's CPU)
from tests.dbserver import Server
from tests.fixture_data import write_company
from tests.xdist_groups import pytest_collection_modifyitems  # noqa: F401  (the xdist_group marks, honoured)

if TYPE_CHECKING:
    from dashboard.query.warehouse import Warehouse


def pytest_configure(config: pytest.Config) -> None:
    """One "today" for the whole run: the day the run started in the demo's timezone, held in COCKPIT_AS_OF,
    which xdist's workers and every program a test starts inherit. Golden records' lifecycle and churn's last
    day read follow it, so a demo refreshed early in the run and one refreshed after midnight in Shanghai
    (16:00 UTC) give the same numbers (tests/test_as_of.py). A day set by whoever runs the tests is kept."""
    os.environ.setdefault(AS_OF_ENV, today(Settings().timezone).isoformat())


@pytest.fixture(autouse=True)
def _no_developer_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)


@pytest.fixture(autouse=True)
def _sign_in_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Page tests run as `cockpit serve --no-auth` does (everything, unmasked); the security tests
    (tests/test_security*.py) turn sign-in back on with monkeypatch.delenv and sign in as each role."""
    monkeypatch.setenv("COCKPIT_NO_AUTH", "1")


@pytest.fixture(scope="session")
def _published_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The messy company refreshed, once per run (made_once)."""

    def make(root: Path) -> None:
        from dashboard.pipeline.refresh import refresh

        result = refresh(load_settings(write_company(root)))
        assert result.exit_code == 0, [r.reasons for r in result.sources]

    return made_once(tmp_path_factory, "company_template", make)


@pytest.fixture
def company(_published_template: Path, tmp_path: Path) -> Iterator[Settings]:
    """A private copy of the refreshed company: tests may refresh, break and corrupt it freely."""
    root = tmp_path / "company"
    shutil.copytree(_published_template, root)
    yield load_settings(root / "cockpit.toml")


@pytest.fixture(scope="module")
def company_read(_published_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One copy of the refreshed company for a module's tests that only read it (a page opened on it, its
    queries asked); a test that refreshes, breaks or adds to the company takes ``company``, its own copy."""
    root = tmp_path_factory.mktemp("company_read") / "company"
    shutil.copytree(_published_template, root)
    return load_settings(root / "cockpit.toml")


@pytest.fixture(scope="module")
def company_served(company_read: Settings) -> Iterator[Warehouse]:
    """One serving Warehouse over ``company_read`` for the module's questions: a new Warehouse builds its views
    again (~0.35 CPU-s on the company, ~0.45 on the small demo), so a test that only asks shares this one."""
    from dashboard.query.warehouse import Warehouse

    warehouse = Warehouse(company_read)
    yield warehouse
    warehouse.close()


@pytest.fixture(scope="module")
def demo_served(small_demo: Settings) -> Iterator[Warehouse]:
    """One serving Warehouse over the module's ``small_demo``, as ``company_served`` is over the company; it follows
    the demo's manifest, so a module that refreshes its demo is served the new build."""
    from dashboard.query.warehouse import Warehouse

    warehouse = Warehouse(small_demo)
    yield warehouse
    warehouse.close()


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder ``make`` fills, made once for the whole run and then only read (copy it to change it). Under
    pytest-xdist (make test) each worker's base folder lies in the run's own, so the first worker to ask makes
    it there while the others wait on its lock, instead of every worker making its own; alone, in the base
    folder. A folder left half made (``make`` failed) is made again by the next to ask."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = shared / name, shared / f"{name}.made"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


def demo_template(tmp_path_factory: pytest.TempPathFactory, size: str) -> Path:
    """The demo of ``size`` generated (seed 42) and refreshed with the repository's config, once per run."""

    def make(root: Path) -> None:
        from dashboard.demo import generate
        from dashboard.pipeline.refresh import refresh

        shutil.copy(Path(__file__).resolve().parents[1] / "cockpit.toml", root / "cockpit.toml")
        settings = load_settings(root / "cockpit.toml")
        generate(settings.data_path, size, 42)
        result = refresh(settings)
        assert result.exit_code == 0, [(r.source, r.reasons) for r in result.sources]

    return made_once(tmp_path_factory, f"{size}_demo_template", make)


@pytest.fixture(scope="session")
def _small_demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small demo generated and refreshed with the repository's config, once per run (demo_template)."""
    return demo_template(tmp_path_factory, "small")


@pytest.fixture(scope="module")
def small_demo(_small_demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A private copy of the refreshed small demo for each test module (generating and refreshing it costs
    ~15 CPU-s; copying its ~14 MB a fraction of a second), so a module may change it freely."""
    root = tmp_path_factory.mktemp("small_demo") / "demo"
    shutil.copytree(_small_demo_template, root, symlinks=True)
    return load_settings(root / "cockpit.toml")


@pytest.fixture(scope="module")
def on_spark(small_demo: Settings) -> Settings:
    """The module's small demo with engine spark on local[2]; skips (fails in CI) without pyspark or Java."""
    from tests.sparkcluster import spark_home

    spark_home()
    engine = EngineConfig.model_validate({"kind": "spark", "master": "local[2]"})
    return small_demo.model_copy(update={"engine": engine})


@pytest.fixture(scope="module")
def spark(on_spark: Settings) -> Iterator[Any]:
    """A session on ``on_spark``'s engine for the module's own Spark jobs (Splink's linker registers its jar's
    functions when the scorer runs); stopped at the module's end, this process's JVM kept for the next module's
    whatever its size, as the modules' own fixtures kept it (tests/sparkcluster.py stop_keeping_jvm)."""
    from dashboard.derived.spark.session import build_session
    from tests.sparkcluster import stop_keeping_jvm

    session = build_session(on_spark)
    yield session
    stop_keeping_jvm(session, below=None)


@pytest.fixture(scope="session", params=["postgres", "mysql"])
def db_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A real PostgreSQL or MariaDB server (tests/dbserver.py), started once per test process for all the
    database tests, which make test runs on one worker (xdist_group "databases"); each test resets its tables."""
    start = dbserver.postgres if request.param == "postgres" else dbserver.mariadb
    with start() as s:
        yield s


@pytest.fixture
def fresh_company(tmp_path: Path) -> Settings:
    """The inputs only, nothing refreshed yet."""
    return load_settings(write_company(tmp_path / "fresh"))


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    """Streamlit's caches live as long as the process: each page test starts and ends with them empty."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
