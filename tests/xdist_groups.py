"""``pytest -n 2 --dist loadgroup`` (make test) as pytest-xdist means it under pytest 9.2: every test marked
``xdist_group(name)`` runs on one worker. xdist 3.8 tells its scheduler a test's group by renaming the test
``<nodeid>@<name>`` through the attribute ``_nodeid``, which pytest 9.2 no longer reads (a node's id is the
structured ``_id``): the marks were silently ignored, the Spark and browser tests spread test by test over
both workers, and each worker started its own Spark cluster, refreshed its own demos and served its own
browser demo (pytest-xdist issue 1386). This hook renames them as xdist does, after every mark is added."""

from __future__ import annotations

import pytest


def group_suffix(item: pytest.Item) -> str:
    """``@<names>`` for a test with xdist_group marks (xdist's spelling), else ``""``."""
    names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    return "@" + "_".join(sorted(names)) if names else ""


@pytest.hookimpl(trylast=True)  # after the conftests' hooks that add marks (tests/browser/conftest.py)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):  # set on xdist's workers with --dist loadgroup
        return
    for item in items:
        suffix = group_suffix(item)
        ident = getattr(item, "_id", None)
        if not suffix or item.nodeid.endswith(suffix) or ident is None:  # grouped by xdist itself
            continue
        item._id = type(ident).parse(item.nodeid + suffix)
