"""Raw files are hashed again only when they changed (issue 22): a digest is kept per source, by the file's
size, mtime, ctime and inode; a file whose content changed is read again and gives the new digest."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dashboard.core.config import Settings
from dashboard.pipeline import fingerprint
from dashboard.pipeline.refresh import refresh


def _age(path: Path, seconds: float = 60) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files hashed (read whole)."""
    seen: list[str] = []
    real = fingerprint.file_digest

    def counted(path: Path) -> str:
        seen.append(path.name)
        return real(path)

    monkeypatch.setattr(fingerprint, "file_digest", counted)
    return seen


def test_an_unchanged_file_is_not_read_again(tmp_path: Path, reads: list[str]) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id\n1\n")
    b.write_text("id\n2\n")
    _age(a)
    _age(b)
    cache = tmp_path / "cache" / "src.json"
    first = fingerprint.cached_digests(cache, [a, b])
    assert reads == ["a.csv", "b.csv"] and cache.is_file()
    assert fingerprint.cached_digests(cache, [a, b]) == first
    assert reads == ["a.csv", "b.csv"]  # nothing read the second time

    a.write_text("id\n3\n")  # same size, new content, an older mtime than before even
    _age(a, 120)
    again = fingerprint.cached_digests(cache, [a, b])
    assert reads == ["a.csv", "b.csv", "a.csv"]
    assert again == [fingerprint.file_digest(a), first[1]] and again[0] != first[0]


def test_a_file_written_just_now_is_read_each_time(tmp_path: Path, reads: list[str]) -> None:
    a = tmp_path / "a.csv"
    a.write_text("id\n1\n")  # a second write in the same clock tick could keep this mtime
    cache = tmp_path / "src.json"
    fingerprint.cached_digests(cache, [a])
    fingerprint.cached_digests(cache, [a])
    assert reads == ["a.csv", "a.csv"]


def test_a_refresh_reads_only_the_changed_file(company: Settings, reads: list[str]) -> None:
    imports = company.base_dir / "imports"
    for f in imports.rglob("*"):
        if f.is_file():
            _age(f)
    assert refresh(company).exit_code == 0  # nothing changed: every file hashed once, the digests kept
    hashed = [r for r in reads if not r.endswith((".py", ".json", ".toml", ".sql"))]
    reads.clear()
    spend = imports / "marketing" / "spend.csv"
    spend.write_bytes(spend.read_bytes().replace(b"1", b"2", 1))
    _age(spend, 30)
    result = refresh(company)
    assert result.exit_code == 0
    assert [r for r in reads if not r.endswith((".py", ".json", ".toml", ".sql"))] == ["spend.csv"]
    assert hashed and "spend.csv" in hashed
    assert [s.source for s in result.sources if not s.unchanged] == ["marketing"]
