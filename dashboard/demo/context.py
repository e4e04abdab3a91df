"""The state one demo run hands to each source system: the world, the random streams and the outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from dashboard.demo.clock import Clock
from dashboard.demo.common import I64, rng_for
from dashboard.demo.journeys import Journeys
from dashboard.demo.leads import Customers, Leads
from dashboard.demo.memberships import Members
from dashboard.demo.pool import People, Words


@dataclass
class Context:
    n: int  # the size: customers, roughly
    seed: int
    clock: Clock
    raw: Path  # <data_dir>/raw/demo
    progress: Callable[[str], None] | None
    words: Words
    people: People
    leads: Leads
    customers: Customers
    members: Members
    journeys: Journeys  # touches before a deal closes, in systems other than the lead's
    files: list[Path] = field(default_factory=list)  # every file written, in order
    counts: dict[str, int] = field(default_factory=dict)  # rows written per "source.entity"
    truth: list[pl.DataFrame] = field(default_factory=list)  # identity ground truth, per record

    def rng(self, name: str) -> np.random.Generator:
        return rng_for(self.seed, name)

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)

    def out(self, source: str, name: str) -> Path:
        """The path of a new file of ``source`` (its folder made); the file is recorded."""
        folder = self.raw / source
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        self.files.append(path)
        return path

    def count(self, key: str, rows: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + rows

    def add_truth(self, source: str, ids: pl.Series, person: I64) -> None:
        """Record which person each of ``source``'s record ids belongs to."""
        self.truth.append(
            pl.DataFrame(
                {
                    "source_system": pl.Series([source], dtype=pl.String).gather(np.zeros(len(ids), dtype=np.int64)),
                    "source_record_id": ids.cast(pl.String),
                    "person_id": self.people.id.gather(person),
                }
            )
        )
