"""The gate's regular expressions read the same on Spark as on one machine: Java's \\d is ASCII-only unless
asked otherwise, Python's and polars' are Unicode, so a phone typed with a full-width digit (13８00138000, which
standardize's own rule finds valid) failed the phone pattern on Spark alone."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest

from dashboard.core.config import Settings, parse_settings
from dashboard.core.parse import MOBILE_RE, normalize_phone
from dashboard.pipeline.validate import validate
from tests.sparkcluster import spark_home, stop_keeping_jvm

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Settings]]:
    spark_home()  # skips (fails in CI) without pyspark or Java
    root = tmp_path_factory.mktemp("gate")
    duck = parse_settings({"data_dir": str(root / "duck")}, root)
    spark = parse_settings({"data_dir": str(root / "spark"), "engine": {"kind": "spark", "master": "local[1]"}}, root)
    yield duck, spark
    stop_keeping_jvm()


def test_a_full_width_digit_gets_the_same_verdict_on_both_engines(engines: tuple[Settings, Settings]) -> None:
    # standardize now types these in ASCII; a frame from elsewhere may still hold them as typed
    typed = pl.Series("phone", ["13８00138000"] * 3 + ["13800138000"] * 5 + ["call me", "１３８００１３８０００"])
    valid = typed.str.contains(MOBILE_RE)
    assert valid.to_list() == [True] * 8 + [False, False]  # polars' \d is any decimal digit
    assert normalize_phone(typed)[0].to_list()[:3] == ["13800138000"] * 3
    frame = pl.DataFrame({"lead_id": [f"L{i}" for i in range(10)], "phone": typed, "phone_valid": valid})
    verdicts = []
    for settings in engines:
        (settings.data_path / "staging").mkdir(parents=True, exist_ok=True)
        [outcome] = [
            o
            for o in validate(frame, "leads", "crm", settings=settings)
            if o.column == "phone" and "regex" in o.expectation
        ]
        verdicts.append((outcome.success, outcome.unexpected_count, outcome.kwargs.get("regex")))
    duck, spark = verdicts
    assert duck[1] == 2 and duck[2] == r"^1[3-9]\d{9}$"
    assert spark == duck  # and the pattern is reported as the suite has it
