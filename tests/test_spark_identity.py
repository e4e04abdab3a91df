"""Identity resolution with engine spark against engine duckdb: Splink's Spark linker scores the candidate pairs
(derived.spark.identity) with the comparisons and blocking rules of derived.identity transpiled to Spark SQL.
Each comparison level and blocking rule is run on both engines over awkward pairs (Chinese names one or two
characters off, which DuckDB compares byte by byte, homophones, missing values), and a population with
known pairs (exact, fuzzy, overrides) is resolved on both: the same customers, keys, rules and confidences."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest

from dashboard.core.config import Settings, parse_settings
from dashboard.core.duck import quote_path
from dashboard.derived.identity import (
    _BLOCKING,
    MAX_SHARED,
    Model,
    Override,
    _comparisons,
    block,
    link_exact,
    pinyin,
    resolve,
)
from dashboard.derived.spark import identity as spark_identity
from dashboard.derived.spark.jobs import PARTS, shared_uri
from dashboard.derived.spark.session import build_session
from tests.sparkcluster import spark_home
from tests.test_identity import _frame, _keys, _people, _records

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    spark_home()  # skips (fails in CI) without pyspark or Java
    root = tmp_path_factory.mktemp("spark_identity")
    raw = {"data_dir": str(root / "data"), "engine": {"kind": "spark", "master": "local[2]"}}
    settings = parse_settings(raw, root)
    settings.data_path.mkdir(parents=True)
    return settings


@pytest.fixture(scope="module")
def spark(settings: Settings) -> Iterator[Any]:
    from splink import SparkAPI

    session = build_session(settings)
    SparkAPI(spark_session=session)  # registers the jar's functions (jaro_winkler), as the scorer's linker does
    yield session
    session.stop()


# ------------------------------------------------------------------------- comparisons and blocking rules
# (name, phone, phone_invalid digits as pass 2 sees them, email, mistyped email, company, city, region)
RECORDS = [
    ("王晓伟", "13812345678", None, "wxw@example.com", None, "上海星河贸易有限公司", "上海", "华东"),
    ("王晓玮", None, "1381234567", None, "wxw@example", "星河贸易有限公司", "上海", "华东"),  # homophone, short
    ("王晓强", None, None, None, None, None, None, "华东"),  # one character (two of its UTF-8 bytes) off
    ("王大军", "13812345670", None, None, None, None, "杭州", None),  # two characters (six bytes) off
    ("赵晓伟", "13812345678", None, "wxw@example.com", None, "上海星河贸易有限公司", None, None),
    ("Zhang Wei", None, None, "zw@example.com", None, "Acme", "北京", "华北"),  # a Latin name, a short company
    ("zhangwei", None, "8613900001111", None, "zw#example.com", None, "北京", None),
    ("zhangwie", "13900001111", None, None, None, None, None, "华北"),  # transposed: Jaro-Winkler
    (None, "13900001112", None, None, None, None, None, None),
    ("李娜", None, None, None, None, None, None, None),
    ("李娜娜", None, None, None, None, "北京星辰科技", "北京", "华北"),
    ("刘强", "13700000000", None, "lq@example.com", None, "北京星辰科技有限公司", "天津", "华北"),
]


def _features() -> pl.DataFrame:
    """RECORDS as derived.identity.features shapes them (the columns the comparisons and rules read)."""
    rows = pl.DataFrame(
        RECORDS,
        schema=["name", "phone", "digits", "email", "email_invalid", "company", "city", "region"],
        orient="row",
    )
    email_any = pl.coalesce("email", "email_invalid").str.to_lowercase().str.replace_all("#", "@")
    out = rows.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("unique_id"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("ex"),
        pl.col("name").str.replace_all(" ", "").str.to_lowercase(),
        "phone",
        pl.coalesce(pl.col("phone").str.slice(0, 10), pl.col("digits").str.replace(r"^86", "").str.slice(0, 10)).alias(
            "phone10"
        ),
        "email",
        email_any.str.extract(r"^([^@]+@[^@.]+)").alias("email_key"),
        pl.when(pl.col("company").str.len_chars() >= 4).then(pl.col("company")).alias("company"),
        "city",
        "region",
    )
    return out.with_columns(
        pinyin(out["name"]).alias("name_py"),
        pl.len().over("name").cast(pl.Int32).alias("name_n"),
        pl.col("phone10").str.slice(0, 7).alias("phone7"),
    )


def _model() -> dict[str, Any]:
    """derived.identity's comparisons and blocking rules as Splink's JSON, in DuckDB SQL (the trained model's form)."""
    from splink import SettingsCreator

    creator = SettingsCreator(
        link_type="dedupe_only",
        comparisons=_comparisons(),
        blocking_rules_to_generate_predictions=[block(rule) for rule in _BLOCKING],
    )
    return creator.get_settings("duckdb").as_dict()


def _levels(model: dict[str, Any]) -> dict[str, str]:
    """Each comparison as one CASE expression: the index of the first level whose condition holds."""
    out = {}
    for comparison in model["comparisons"]:
        levels = [level["sql_condition"] for level in comparison["comparison_levels"]]
        whens = " ".join(f"WHEN {c} THEN {i}" for i, c in enumerate(levels) if c.strip().upper() != "ELSE")
        out[comparison["output_column_name"]] = f"CASE {whens} ELSE {len(levels) - 1} END"
    return out


def _compared(columns: list[str], select: str) -> str:
    """Every pair of records, each column as ``<column>_l`` and ``<column>_r`` (Splink's names), and ``select``."""
    sides = ", ".join(f"l.{c} AS {c}_l, r.{c} AS {c}_r" for c in columns)
    return (
        f"SELECT id_l, id_r, {select} FROM (SELECT l.unique_id AS id_l, r.unique_id AS id_r, {sides} "
        "FROM features AS l JOIN features AS r ON l.unique_id < r.unique_id)"
    )


def _blocked(rule: str) -> str:
    return (
        "SELECT l.unique_id AS id_l, r.unique_id AS id_r FROM features AS l JOIN features AS r "
        f"ON l.unique_id < r.unique_id AND ({rule})"
    )


def _on_both(spark: Any, settings: Settings, duck_sql: str, spark_sql: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    path = settings.data_path / "features.parquet"
    _features().write_parquet(path)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW features AS SELECT * FROM read_parquet({quote_path(path)})")
    spark.read.parquet(shared_uri(settings, path)).createOrReplaceTempView("features")
    want = con.sql(duck_sql).pl()
    got = pl.from_arrow(spark.sql(spark_sql).toArrow())
    assert isinstance(got, pl.DataFrame)
    return want.sort("id_l", "id_r"), got.select(want.columns).cast(dict(want.schema)).sort("id_l", "id_r")


def test_every_comparison_level_is_chosen_alike_on_both_engines(spark: Any, settings: Settings) -> None:
    duck, on_spark = _levels(_model()), _levels(spark_identity.spark_model(_model()))
    columns = list(_features().columns)
    want, got = _on_both(
        spark,
        settings,
        _compared(columns, ", ".join(f"{sql} AS {name}" for name, sql in duck.items())),
        _compared(columns, ", ".join(f"{sql} AS {name}" for name, sql in on_spark.items())),
    )
    assert want.height == len(RECORDS) * (len(RECORDS) - 1) // 2
    assert got.equals(want), got.join(want, on=["id_l", "id_r"], suffix="_duckdb").filter(
        pl.any_horizontal(pl.col(c) != pl.col(f"{c}_duckdb") for c in duck)
    )
    # the pairs reach every level of every comparison (the names' levels one by one): nothing left untried
    for comparison in _model()["comparisons"]:
        name, count = comparison["output_column_name"], len(comparison["comparison_levels"])
        assert sorted(want[name].unique().to_list()) == list(range(count)), name
    # DuckDB compares names byte by byte: 王晓伟 / 王晓强 are one character off, 王晓伟 / 王大军 (two characters,
    # six bytes) a different name, which Spark's own character-wise levenshtein would have let through
    by_pair = {(a, b): level for a, b, level in want.select("id_l", "id_r", "name").rows()}
    assert by_pair[(0, 2)] == 3 and by_pair[(0, 3)] == 5


def test_every_blocking_rule_picks_the_same_pairs_on_both_engines(spark: Any, settings: Settings) -> None:
    duck = _model()["blocking_rules_to_generate_predictions"]
    on_spark = spark_identity.spark_model(_model())["blocking_rules_to_generate_predictions"]
    picked = 0
    for rule_duck, rule_spark in zip(duck, on_spark, strict=True):
        want, got = _on_both(
            spark, settings, _blocked(rule_duck["blocking_rule"]), _blocked(rule_spark["blocking_rule"])
        )
        assert got.equals(want), (rule_duck, got, want)
        picked += want.height
    assert picked >= 5  # the rules pick pairs here: the comparison is not between two empty sets


# ------------------------------------------------------------------------- a population with known pairs
def _population() -> tuple[pl.DataFrame, list[Override]]:
    people = _people(1500)
    a, b, c, d = people[10], people[20], people[30], people[40]
    a["name"], d["name"] = "王晓伟", "李建国"  # not one of the population's ubiquitous two-character names
    fuzzy = [
        # homophone typo, the phone a digit short, the email mistyped
        {**a, "source_system": "pos", "source_record_id": "P1", "phone": None, "phone_invalid": a["phone"][:10],
         "email": None, "email_invalid": "USER10@example", "name": "王晓玮"},
        # exact name and city, the phone a digit short, '#' for '@'
        {**b, "source_system": "wechat", "source_record_id": "W1", "phone": None, "phone_invalid": b["phone"][:10],
         "email": None, "email_invalid": "user20#example.com"},
        # one character off (not a homophone), the phone a digit short, the email without its .com
        {**d, "source_system": "wechat", "source_record_id": "W2", "phone": None, "phone_invalid": d["phone"][:10],
         "email": None, "email_invalid": "user40@example", "name": "李建华"},
        # a namesake: same name and city, another valid phone
        {**c, "source_system": "pos", "source_record_id": "P2", "phone": "13900000001", "email": None},
    ]  # fmt: skip
    members = [{**p, "source_system": "pos", "source_record_id": f"M{i}"} for i, p in enumerate(people[::3])]
    overrides = [
        Override("merge", "erp:E00100", "erp:E00200"),  # nothing in common: forced together
        Override("split", "erp:E00300", "pos:M100"),  # the same phone: kept apart
    ]
    return _frame([*people, *members, *fuzzy]), overrides


@pytest.fixture(scope="module")
def resolved(settings: Settings, spark: Any) -> dict[str, Any]:
    records, overrides = _population()
    duck_model, spark_model = Model(threshold=0.95), Model(threshold=0.95)
    stage = settings.data_path / "stage"
    stage.mkdir()
    score = spark_identity.scorer(spark, settings, stage)

    def graph() -> spark_identity.SparkGraph:  # pass 1 and the clusters on Spark, as a refresh with engine spark
        return spark_identity.SparkGraph(spark, settings, stage)

    out = {
        "records": records,
        "duckdb": resolve(records, duck_model, overrides),
        "spark": resolve(records, spark_model, overrides, score=score, graph=graph()),
        "models": (duck_model, spark_model),
        "stage": stage,
    }
    # a later build scores with the parameters an earlier one trained (issue 22), on either engine
    kept = [Model(threshold=0.95, trained=duck_model.trained, tf_total=duck_model.tf_total) for _ in range(2)]
    out["kept"] = (
        resolve(records, kept[0], overrides),
        resolve(records, kept[1], overrides, score=score, graph=graph()),
    )
    return out


def test_spark_links_the_known_pairs(resolved: dict[str, Any]) -> None:
    links, records = resolved["spark"], resolved["records"]
    key, exact = _keys(links), _keys(link_exact(records))
    rules = dict(zip(links["source_system"] + ":" + links["source_record_id"], links["match_rule"], strict=True))
    assert key["erp:E00000"] == key["pos:M0"] and rules["pos:M0"] == "exact:email+phone"  # pass 1
    for fuzzy, person in (("pos:P1", "erp:E00010"), ("wechat:W1", "erp:E00020"), ("wechat:W2", "erp:E00040")):
        assert exact[fuzzy] != exact[person]  # pass 1 alone misses it ...
        assert key[fuzzy] == key[person] and rules[fuzzy] == "probabilistic", fuzzy  # ... Splink on Spark links it
    assert key["pos:P2"] != key["erp:E00030"] and rules["pos:P2"] == "single"  # the namesake stays apart
    assert key["erp:E00100"] == key["erp:E00200"] and rules["erp:E00200"] == "override"
    assert exact["erp:E00300"] == exact["pos:M100"] and key["erp:E00300"] != key["pos:M100"]
    assert links.height == records.height
    assert not (resolved["stage"] / PARTS).exists()  # the features, Splink's tables and the pairs are removed


def test_spark_and_duckdb_make_the_same_links(resolved: dict[str, Any]) -> None:
    want, got = resolved["duckdb"], resolved["spark"]
    assert got.drop("confidence").equals(want.drop("confidence"))  # keys, records, rules: the same rows
    # a confidence is a match probability floored to 4 places: a last-bit difference in Spark's arithmetic
    # may move it by one step, never more
    assert (got["confidence"] - want["confidence"]).abs().max() <= 1.0001e-4
    duck_model, spark_model = resolved["models"]
    assert spark_model.stats["pairs_linked"] == duck_model.stats["pairs_linked"] >= 3
    # pass 1's clusters were found on Spark: Splink's connected components name each by its smallest record
    # (scipy's by their order), and pass 2 compared the same clusters
    spark_state, duck_state = spark_model.state, duck_model.state
    assert spark_state is not None and duck_state is not None
    first = spark_state.group_by("ex").agg(pl.col("rid").min().alias("smallest"), pl.len().alias("n"))
    assert (first["ex"] == first["smallest"]).all() and first["n"].max() > 1
    assert not spark_state["ex"].equals(duck_state["ex"])
    assert _clusters(spark_state, "ex") == _clusters(duck_state, "ex")


def _clusters(frame: pl.DataFrame, by: str) -> set[frozenset[int]]:
    return {frozenset(g["rid"].to_list()) for _, g in frame.group_by(by)}


def test_kept_parameters_score_alike_on_both_engines(resolved: dict[str, Any]) -> None:
    on_duckdb, on_spark = resolved["kept"]
    assert on_spark.drop("confidence").equals(on_duckdb.drop("confidence"))
    assert (on_spark["confidence"] - on_duckdb["confidence"]).abs().max() <= 1.0001e-4
    assert on_spark.drop("confidence").equals(resolved["spark"].drop("confidence"))  # as when they were trained


def test_a_failing_spark_scoring_is_an_engine_error_naming_the_step(settings: Settings, spark: Any) -> None:
    from dashboard.derived.spark.session import EngineError

    stage = settings.data_path / "failing"
    stage.mkdir()
    score = spark_identity.scorer(spark, settings, stage)
    records, _ = _population()
    with pytest.raises(EngineError, match="the Spark job for identity_links failed"):
        score(records.select("name"), {"comparisons": [], "blocking_rules_to_generate_predictions": []}, Model())
    assert not (stage / PARTS).exists()


# ------------------------------------------------------------------------- pass 1 and the clusters on Spark
def _chains() -> tuple[pl.DataFrame, list[Override]]:
    """Records that only others link: each chain's ends share nothing (A1 … D1 through a phone, an email, a lead's
    own customer and an ID number), a middle record detached (X2), two ends of one chain kept apart (Y1, Y4), two
    strangers merged (Z1, Z2), and a placeholder phone more than MAX_SHARED records give, which links nobody."""
    rows = [
        ("erp", "A1", "customer", "13800000001", None, None, None),
        ("wechat", "B1", "customer", "13800000001", "b1@x.com", None, None),
        ("crm", "C1", "lead", None, "b1@x.com", None, "K1"),
        ("crm", "K1", "customer", None, None, "110101199001011234", None),
        ("pos", "D1", "customer", None, None, "110101199001011234", None),
        ("erp", "X1", "customer", "13800000002", None, None, None),
        ("pos", "X2", "customer", "13800000002", "x@x.com", None, None),
        ("crm", "X3", "lead", None, "x@x.com", None, None),
        ("erp", "Y1", "customer", "13800000003", None, None, None),
        ("pos", "Y2", "customer", "13800000003", "y@x.com", None, None),
        ("wechat", "Y3", "customer", "13800000004", "y@x.com", None, None),
        ("crm", "Y4", "lead", "13800000004", None, None, None),
        ("erp", "Z1", "customer", "13800000005", None, None, None),
        ("pos", "Z2", "customer", "13800000006", None, None, None),
        *(("shop", f"T{i}", "customer", "13800000000", None, None, None) for i in range(MAX_SHARED + 1)),
    ]
    overrides = [
        Override("detach", "pos:X2", ""),
        Override("split", "erp:Y1", "crm:Y4"),
        Override("merge", "erp:Z1", "pos:Z2"),
    ]
    return _records(rows), overrides


def test_pass_one_and_the_clusters_on_spark_link_what_duckdb_links(settings: Settings, spark: Any) -> None:
    records, overrides = _chains()
    stage = settings.data_path / "chains"
    stage.mkdir()
    want = resolve(records, None, overrides)
    got = resolve(records, None, overrides, graph=spark_identity.SparkGraph(spark, settings, stage))
    assert got.equals(want)  # keys (made from each cluster's records), rules and confidences
    key = _keys(got)
    assert key["erp:A1"] == key["wechat:B1"] == key["crm:C1"] == key["crm:K1"] == key["pos:D1"]  # only through others
    assert key["erp:X1"] != key["crm:X3"] and len({key["erp:X1"], key["pos:X2"], key["crm:X3"]}) == 3  # detached
    assert (
        key["erp:Y1"] != key["crm:Y4"] and len({key[f"{s}"] for s in ("erp:Y1", "pos:Y2", "wechat:Y3", "crm:Y4")}) == 2
    )
    assert key["erp:Z1"] == key["pos:Z2"]
    assert len({key[f"shop:T{i}"] for i in range(MAX_SHARED + 1)}) == MAX_SHARED + 1  # a placeholder links nobody
    rules = dict(zip(got["source_system"] + ":" + got["source_record_id"], got["match_rule"], strict=True))
    assert rules["wechat:B1"] == "exact:email+phone" and rules["crm:C1"] == "exact:customer_ref+email"
    assert rules["pos:Z2"] == "override" and rules["shop:T0"] == "single"
    assert not (stage / PARTS).exists()  # the graph's files are removed


def test_keys_made_on_spark_are_duckdbs_kept_claimed_and_salted(settings: Settings, spark: Any) -> None:
    """The keys a later build hands on (votes of the previous build's keys) are made on Spark as on the driver: a
    key goes to the part holding most of its records, two customers now one keep the smaller key, and the part an
    override splits off whose smallest record once named the whole customer gets that key salted."""
    from dashboard.derived.identity import _fresh_key

    rows = [
        ("erp", "Q1", "customer", "13800000011", None, None, None),
        ("pos", "Q2", "customer", "13800000011", "q@x.com", None, None),
        ("wechat", "Q3", "customer", None, "q@x.com", None, None),
        ("crm", "Q4", "lead", None, "q@x.com", None, None),
        ("erp", "R1", "customer", "13800000021", None, None, None),
        ("pos", "R2", "customer", "13800000022", None, None, None),
    ]
    before = _keys(resolve(_records(rows), None))
    assert len({before[r] for r in ("erp:Q1", "pos:Q2", "wechat:Q3", "crm:Q4")}) == 1
    assert before["erp:R1"] != before["pos:R2"]
    previous = resolve(_records(rows), None).select("source_system", "source_record_id", "customer_key")
    rows[5] = ("pos", "R2", "customer", "13800000021", None, None, None)  # now R1's phone: one customer
    overrides = [Override("split", "erp:Q1", "pos:Q2")]
    stage = settings.data_path / "keys"
    stage.mkdir()
    want = resolve(_records(rows), None, overrides, previous)
    got = resolve(_records(rows), None, overrides, previous, graph=spark_identity.SparkGraph(spark, settings, stage))
    assert got.equals(want)
    key = _keys(got)
    assert key["pos:Q2"] == key["wechat:Q3"] == key["crm:Q4"] == before["erp:Q1"]  # the larger part keeps it
    assert key["erp:Q1"] == _fresh_key("customer:erp:Q1#1")  # its own fresh key is taken: salted
    assert key["erp:R1"] == key["pos:R2"] == min(before["erp:R1"], before["pos:R2"])
    assert not (stage / PARTS).exists()


# ------------------------------------------------------------------------- the records and features made on Spark
def _made_on_both(settings: Settings, spark: Any, folder: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A company's records resolved from its snapshots (settings' manifest) on both engines: (the driver's
    records and features as derived.identity makes them, the same as Spark made them, the keys Spark's driver
    got back); every record numbered alike."""
    from dashboard.core.duck import attach_entities
    from dashboard.core.store import Store
    from dashboard.derived.identity import NODE_COLUMNS, Records, features, read_records, state_hashes

    store = Store(settings.data_path)
    manifest = store.read_manifest()
    with duckdb.connect() as con:
        attach_entities(con, store, manifest)
        recs = Records(read_records(con)).recs
    exact = np.arange(recs.height, dtype=np.int64)
    feats = features(recs, exact)
    want = pl.concat(
        [
            recs.select(*NODE_COLUMNS, "uid", "ref"),
            feats.drop("unique_id", "ex", "phone", "email"),
            state_hashes(feats),
        ],
        how="horizontal",
    )
    stage = settings.data_path / folder
    stage.mkdir()
    made = spark_identity.SparkRecords(spark, settings, store, manifest, stage)
    try:
        spark.createDataFrame([(int(n), int(n)) for n in exact], "node bigint, cluster bigint").createOrReplaceTempView(
            "identity_exact"
        )
        made.features(exact)
        on_spark = pl.from_arrow(
            spark.sql(
                "SELECT r.*, f.name_n FROM identity_records_made AS r JOIN identity_features_made AS f "
                "ON f.unique_id = r.node ORDER BY r.node"
            ).toArrow()
        )
        assert isinstance(on_spark, pl.DataFrame)
        got = on_spark.with_columns(
            pl.col("digest", "name_hash").reinterpret(signed=False), pl.col("name_n").cast(pl.Int32)
        )
        keys = made.recs
    finally:
        made.close()
    assert not (stage / PARTS).exists()  # the records' files are removed
    return want, got.select(want.columns), keys


def test_records_and_features_made_on_spark_are_the_drivers_small_demo(on_spark: Settings, spark: Any) -> None:
    want, got, keys = _made_on_both(on_spark, spark, "made_small")
    assert want.height > 5000 and got.height == want.height  # every customer, lead and customer known by reference
    assert got.equals(want)  # numbered alike, each feature and state hash the same
    assert keys.equals(want.select(keys.columns))  # what the driver gets back: keys and hashes, no attribute
    assert "name" not in keys.columns and "phone" not in keys.columns


def _crafted_company(root: Any) -> Settings:
    """Snapshots of awkward records: pinyin names (homophones, Latin with spaces), a placeholder phone more than
    MAX_SHARED records give, bad phones and mails kept as given, a record a snapshot holds twice, a caller known
    only by the mobile number an order names, a lead naming its customer."""
    from dashboard.core.duck import entity_columns
    from dashboard.core.store import Store

    settings = parse_settings({"data_dir": str(root / "data"), "engine": {"kind": "spark", "master": "local[2]"}}, root)
    store = Store(settings.data_path)
    customers = [
        ("C1", "王晓伟", "13812345678", True, "wxw@example.com", True, "上海星河贸易(有限)公司", "上海", "2024-01-01"),
        ("C2", "王晓玮", "+86 138-1234-567", False, "WXW＠example", False, "星河贸易有限公司", " 上海 ", "2024-01-02"),
        ("C3", "Zhang Wei", None, None, "zw#example.com", False, "Acme", "北京", None),
        ("C4", " zhang  wei ", "8613900001111", False, None, None, None, None, "2024-03-01"),
        ("C4", "张伟", "13900001111", True, None, None, None, None, "2024-02-01"),  # older row of C4
        ("C5", None, "abc", False, "x@", False, None, None, None),
        *((f"T{i}", "李娜", "13800000000", True, None, None, None, "天津", None) for i in range(MAX_SHARED + 1)),
    ]
    frame = pl.DataFrame(
        [
            {"source_record_id": r[0], "name": r[1], "phone": r[2], "phone_valid": r[3], "email": r[4],
             "email_valid": r[5], "company": r[6], "city": r[7], "updated_at": r[8], "id_number": None,
             "id_number_valid": None, "region": "华东", "source_system": "crm", "snapshot_id": "s1"}
            for r in customers
        ]
    ).with_columns(pl.col("updated_at").str.to_datetime())  # fmt: skip
    leads = pl.DataFrame(
        {
            "lead_id": ["L1", "L2"], "created_at": ["2024-01-05 10:00:00", None], "channel": ["web", "web"],
            "customer_ref": ["C1", None], "name": ["王 晓伟", "ＬＩ Ｎa"], "phone": [None, "1390000111"],
            "phone_valid": [None, False], "email": ["wxw@example.com", None], "email_valid": [True, None],
            "source_system": ["crm", "crm"], "snapshot_id": ["s1", "s1"],
        }
    ).with_columns(pl.col("created_at").str.to_datetime())  # fmt: skip
    orders = pl.DataFrame(
        {"order_id": ["O1", "O2"], "customer_ref": ["13700000001", "C1"], "ordered_at": [datetime(2024, 1, 9)] * 2,
         "amount": [1.0, 2.0], "source_system": ["callcenter", "crm"], "snapshot_id": ["s2", "s1"]}
    )  # fmt: skip
    sources: dict[str, Any] = {}
    for source, entity, rows in (
        ("crm", "customers", frame),
        ("crm", "leads", leads),
        ("callcenter", "orders", orders),
    ):
        path = settings.data_path / "snapshots" / source / "s1" / f"{entity}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.select([c for c in rows.columns if c in entity_columns(entity)]).write_parquet(path)
        sources.setdefault(source, {"snapshot_id": "s1", "entities": {}})["entities"][entity] = {
            "file": store.rel(path)
        }
    store.write_manifest({"sources": sources})
    return settings


def test_records_and_features_made_on_spark_are_the_drivers_crafted(tmp_path: Any, spark: Any) -> None:
    settings = _crafted_company(tmp_path)
    want, got, _ = _made_on_both(settings, spark, "made_crafted")
    assert got.equals(want)
    row = {r["uid"]: r for r in got.iter_rows(named=True)}
    assert row["customer:crm:C4"]["name"] == row["customer:crm:C3"]["name"]  # the latest C4 row: a Latin name
    assert row["customer:crm:C2"]["phone10"] == "1381234567" and row["customer:crm:C2"]["phone"] is None  # bad phone
    assert row["customer:crm:C2"]["email_key"] == row["customer:crm:C1"]["email_key"] == "wxw@example"
    assert row["customer:callcenter:13700000001"]["phone"] == "13700000001"  # a caller known by the number only
    assert row["lead:crm:L1"]["name_py"] == row["customer:crm:C1"]["name_py"] == row["customer:crm:C2"]["name_py"]
    assert row["customer:crm:T0"]["name_n"] == MAX_SHARED + 1 and row["customer:crm:T0"]["phone"] == "13800000000"
    assert got["node"].to_list() == list(range(got.height))  # 0..n-1 across Spark's partitions


def _digest(settings: Settings, spark: Any) -> tuple[object, ...]:
    from dashboard.core.store import Store

    store = Store(settings.data_path)
    stage = settings.data_path / "digest"
    stage.mkdir(exist_ok=True)
    made = spark_identity.SparkInput(spark, settings, store, store.read_manifest(), stage)
    try:
        got = made.digest()
        shutil.rmtree(stage / PARTS, ignore_errors=True)  # as the steps between identity and golden records do
        assert made.path().is_dir()  # the records outlive that cleanup: golden records read them later
        return got
    finally:
        made.close()
        assert list(stage.iterdir()) == []  # the records' files are removed


def _rewritten(settings: Settings, change: Any) -> None:
    """The crafted company's customers snapshot written again through ``change`` (a frame → a frame)."""
    from dashboard.core.store import Store

    store = Store(settings.data_path)
    path = store.abs(store.read_manifest()["sources"]["crm"]["entities"]["customers"]["file"])
    change(pl.read_parquet(path)).write_parquet(path)


def test_identity_is_fingerprinted_on_spark_by_its_records_not_their_order_or_snapshot(
    tmp_path: Any, spark: Any
) -> None:
    """With engine spark the build keys identity by a Spark job over its records (derive.py): the same records in
    another order and another snapshot give the same digest; a changed name, or a value moved to another column
    (Spark's hashes skip nulls), another one."""
    settings = _crafted_company(tmp_path)
    first = _digest(settings, spark)
    assert first[1] == 59  # 56 customers (C4 once), 2 leads, 1 caller known by reference
    _rewritten(settings, lambda f: f.reverse().with_columns(pl.lit("s9").alias("snapshot_id")))
    assert _digest(settings, spark) == first
    _rewritten(settings, lambda f: f.with_columns(pl.col("name").replace("王晓玮", "王晓伟")))
    renamed = _digest(settings, spark)
    assert renamed != first and renamed[1] == first[1]
    c5 = pl.col("source_record_id") == "C5"  # an invalid phone 'abc' and an invalid mail 'x@'
    _rewritten(settings, lambda f: f.with_columns(pl.when(c5).then(None).otherwise(pl.col("email")).alias("email")))
    phone_only = _digest(settings, spark)
    _rewritten(settings, lambda f: f.with_columns(  # 'abc' the mail, no phone
        pl.when(c5).then(None).otherwise(pl.col("phone")).alias("phone"),
        pl.when(c5).then(pl.lit("abc")).otherwise(pl.col("email")).alias("email"),
    ))  # fmt: skip
    assert len({first, renamed, phone_only, _digest(settings, spark)}) == 4


def _resolved_on_spark(settings: Settings, spark: Any, folder: str, model: Model) -> pl.DataFrame:
    """The company's records made on Spark and resolved there (pass 1, scoring, clusters), keys on the driver."""
    from dashboard.core.store import Store

    store = Store(settings.data_path)
    stage = settings.data_path / folder
    stage.mkdir()
    made = spark_identity.SparkRecords(spark, settings, store, store.read_manifest(), stage)
    assert "name" not in made.recs.columns and "phone" not in made.recs.columns  # keys only on the driver
    score, graph = spark_identity.scorer(spark, settings, stage), spark_identity.SparkGraph(spark, settings, stage)
    links = resolve(made, model, score=score, graph=graph)
    assert not (stage / PARTS).exists()
    return links


def _driver_records(settings: Settings) -> pl.DataFrame:
    from dashboard.core.duck import attach_entities
    from dashboard.core.store import Store
    from dashboard.derived.identity import read_records

    store = Store(settings.data_path)
    with duckdb.connect() as con:
        attach_entities(con, store, store.read_manifest())
        return read_records(con)


# The small demo resolved whole on Spark from records made there (the links, Splink's parameters and pairs linked
# DuckDB's): tests/test_spark_identity_jobs.py, on the records a build makes (SparkInput's), one resolve on Spark
# of the small demo for both modules' assertions; the incremental resolution below makes its records itself.


def test_an_incremental_resolution_from_records_made_on_spark_links_what_duckdb_links(
    on_spark: Settings, spark: Any
) -> None:
    """A later build that scores only what changed (issue 22) against an earlier build's state, with the records
    made on Spark: the flags of the records scored again go to Spark, and the links are DuckDB's."""
    from dashboard.derived.identity import Kept

    records = _driver_records(on_spark)
    first = Model(threshold=0.95)
    full = resolve(records, first)
    assert first.state is not None and first.pairs is not None and first.trained is not None
    # 40 records whose compared attributes "changed" since (their digests differ): theirs are scored again
    state = first.state.with_columns(
        pl.when(pl.int_range(pl.len()) % 150 == 0).then(pl.col("digest") + 1).otherwise("digest").alias("digest")
    )
    pairs = first.pairs.rename({"node_l": "rid_l", "node_r": "rid_r"})
    kept = Kept(first.trained, first.tf_total, None, state, pairs)

    def model() -> Model:
        return Model(threshold=0.95, trained=first.trained, tf_total=first.tf_total, kept=kept)

    duck_model, spark_model = model(), model()
    want = resolve(records, duck_model)
    got = _resolved_on_spark(on_spark, spark, "incremental_on_spark", spark_model)
    assert spark_model.stats["records_scored"] == duck_model.stats["records_scored"] >= 40
    assert spark_model.stats["pairs_kept"] == duck_model.stats["pairs_kept"] > 0
    assert got.drop("confidence").equals(want.drop("confidence"))
    assert got.drop("confidence").equals(full.drop("confidence"))  # nothing really changed: the full build's links


def _parameters(model: Model) -> list[float]:
    """A trained model's probabilities, level by level (-1: a level without one)."""
    assert model.trained is not None
    levels = [level for c in model.trained["comparisons"] for level in c["comparison_levels"]]
    values = [level.get(k) for level in levels for k in ("m_probability", "u_probability")]
    return [model.trained["probability_two_random_records_match"], *(-1.0 if v is None else v for v in values)]
