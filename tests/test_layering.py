"""Layering: the data layer never imports streamlit; pages are layout only (no SQL, no duckdb)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "dashboard"
UI = {"app.py", "server.py", "pages", "components"}  # the only places allowed to import streamlit
SQL = re.compile(r"\b(SELECT|FROM|WHERE|JOIN|GROUP BY|ORDER BY|INSERT|UPDATE|DELETE|CREATE)\s")


def core_modules() -> list[str]:
    names = []
    for path in sorted(DASHBOARD.rglob("*.py")):
        rel = path.relative_to(DASHBOARD)
        if rel.parts[0] in UI:
            continue
        parts = ("dashboard", *rel.with_suffix("").parts)
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_core_modules_do_not_import_streamlit() -> None:
    modules = core_modules()
    assert {"dashboard.core.config", "dashboard.query.warehouse", "dashboard.ops.status"} <= set(modules)
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'streamlit' not in sys.modules, f'{name} imports streamlit'\n"
        "print('ok', len(sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")


def page_files() -> list[Path]:
    files = sorted((DASHBOARD / "pages").glob("*.py"))
    assert files
    return files


def test_pages_hold_no_sql_and_no_duckdb() -> None:
    for path in [*page_files(), DASHBOARD / "app.py"]:
        text = path.read_text(encoding="utf-8")
        assert "duckdb" not in text.lower(), path.name
        assert not SQL.search(text), f"{path.name}: SQL belongs in queries/*.sql"


def test_pages_reach_data_only_through_components() -> None:
    allowed = ("streamlit", "dashboard.components", "dashboard.i18n")
    for path in page_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.startswith(allowed), f"{path.name} imports {name}"


def test_only_the_data_component_caches() -> None:
    users = sorted(
        str(p.relative_to(DASHBOARD)) for p in DASHBOARD.rglob("*.py") if "st.cache_" in p.read_text(encoding="utf-8")
    )
    assert users == ["components/data.py"]


def test_every_page_starts_inside_the_app_frame() -> None:
    for path in page_files():
        assert "start_page(" in path.read_text(encoding="utf-8"), path.name


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_another_in_a_cycle() -> None:
    """Every import counts, also one inside a function: a cycle hidden there is still a cycle."""
    import grimp

    built = grimp.build_graph("dashboard")
    graph = {m: set(built.find_modules_directly_imported_by(m)) for m in built.modules}
    assert len(graph) > 80
    assert _cycles(graph) == []


def test_the_top_of_the_package_holds_few_modules() -> None:
    top = sorted(p.name for p in DASHBOARD.glob("*.py"))
    assert len(top) <= 6, top



def test_only_config_reads_the_environment() -> None:
    """Every environment variable the cockpit reads is named in core/config.py and read there (env())."""
    readers = []
    for path in sorted(DASHBOARD.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb")) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "os"
                and {a.name for a in node.names} & {"environ", "getenv", "environb"}
            ):
                readers.append(str(path.relative_to(DASHBOARD)))
    assert sorted(set(readers)) == ["core/config.py"]
