"""Identity resolves new and changed records against the existing clusters (issue 22, point 1).

A build keeps Splink's parameters, its accepted pairs and per record what pass 2 compares; the next build
scores only the pairs that can differ. What must hold: the links equal a full resolution of the same records
with the same parameters (keys, rules and confidences), while only a small part of the records is scored; a
full re-resolution (parameters trained again) happens on --full, past the changed share, at the age limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dashboard.core.config import Settings, load_settings, parse_settings
from dashboard.core.errors import ConfigError
from dashboard.core.store import Store
from dashboard.derived.golden import touched_customers
from dashboard.derived.identity import RARE_NAME, Graph, Kept, Model, kept_resolution, resolve, write_state
from dashboard.pipeline.refresh import refresh
from tests.test_cli import cockpit
from tests.test_identity import _frame, _keys, _people

NOW = datetime(2026, 12, 4, 12, 0)
ROOT = Path(__file__).resolve().parents[1]


def _population() -> list[dict[str, str | None]]:
    """2,000 persons in the ERP; a third again in WeChat (same phone: pass 1), every tenth in the POS with
    the phone a digit short and the email mistyped (only pass 2 finds those)."""
    people = _people(2000)
    wechat = [{**p, "source_system": "wechat", "source_record_id": f"W{i}"} for i, p in enumerate(people[::3])]
    pos = [_typo(p, f"D{i}") for i, p in enumerate(people[::10])]
    return [*people, *wechat, *pos]


def _typo(p: dict[str, str | None], rid: str) -> dict[str, str | None]:
    phone, email = p["phone"] or "", p["email"] or ""
    return {
        **p,
        "source_system": "pos",
        "source_record_id": rid,
        "phone": None,
        "phone_invalid": phone[:10],
        "email": None,
        "email_invalid": email.replace("@", "#"),
    }


def _changed(rows: list[dict[str, str | None]]) -> list[dict[str, str | None]]:
    """About 1 %: new records (a mistyped copy of a known person, a new WeChat member, a stranger), a
    changed name, a changed phone (leaves one pass-1 cluster for another), a removed record."""
    by_id = {r["source_record_id"]: r for r in rows}
    out = [r for r in rows if r["source_record_id"] not in ("W7", "D3")]  # removed
    out = [dict(r) for r in out]
    for r in out:
        if r["source_record_id"] == "E00101":
            r["name"] = "欧阳明"
        if r["source_record_id"] == "E00102":
            r["phone"] = by_id["E00105"]["phone"]  # now one customer with E00105 by pass 1
    new = [_typo(by_id[f"E{i:05d}"], f"N{i}") for i in range(11, 2000, 200)]
    new += [{**by_id[f"E{i:05d}"], "source_system": "wechat", "source_record_id": f"NW{i}"} for i in (4, 5)]
    new.append({**by_id["E00050"], "source_record_id": "E09999", "phone": "13312345678", "email": "new@x.com"})
    return out + new


def _kept(model: Model, tmp: Path, trained_at: datetime | None, max_share: float = 0.2) -> Kept:
    """What a build kept, read back from the files it writes."""
    write_state(model, None, tmp, NOW)
    state = pl.read_parquet(tmp / "identity_state.parquet")
    pairs = pl.read_parquet(tmp / "identity_pairs.parquet")
    return Kept(model.trained, model.tf_total, trained_at, state, pairs, max_share)


@pytest.fixture(scope="module")
def trained() -> tuple[pl.DataFrame, pl.DataFrame, Model]:
    """The population resolved in full, parameters trained: (records, links, model)."""
    records = _frame(_population())
    model = Model(threshold=0.95)
    return records, resolve(records, model), model


def test_given_parameters_score_what_training_scored(trained: tuple[pl.DataFrame, pl.DataFrame, Model]) -> None:
    records, links, model = trained
    again = Model(threshold=0.95, trained=model.trained, tf_total=model.tf_total)
    assert_frame_equal(resolve(records, again), links)
    assert again.stats["pairs_linked"] == model.stats["pairs_linked"] > 100


def test_only_what_changed_is_scored_and_the_links_are_those_of_a_full_resolution(
    trained: tuple[pl.DataFrame, pl.DataFrame, Model], tmp_path: Path
) -> None:
    _records, links, model = trained
    after = _frame(_changed(_population()))
    incremental = Model(threshold=0.95, trained=model.trained, tf_total=model.tf_total)
    incremental.kept = _kept(model, tmp_path, NOW)
    ours = resolve(after, incremental, previous=links)
    full = resolve(after, Model(threshold=0.95, trained=model.trained, tf_total=model.tf_total), previous=links)

    assert_frame_equal(ours, full)  # keys, rules, confidences: pair for pair the same
    assert incremental.stats["records_changed"] == 17  # 2 removed, 2 changed, 13 new
    assert 15 <= incremental.stats["records_scored"] < after.height // 10
    assert incremental.stats["pairs_kept"] > 0.8 * model.stats["pairs_linked"]
    key = _keys(ours)
    assert key["pos:N211"] == key["erp:E00211"]  # a mistyped new copy joins its person (pass 2)
    assert key["wechat:NW4"] == key["erp:E00004"]
    assert key["erp:E00102"] == key["erp:E00105"]  # the changed phone moved it
    assert key["erp:E09999"] not in {key["erp:E00050"]}  # a namesake with other phone and email stays apart
    assert "wechat:W7" not in key


def test_the_records_that_moved_are_told_as_comparing_the_links_finds_them(
    trained: tuple[pl.DataFrame, pl.DataFrame, Model], tmp_path: Path
) -> None:
    """Graph.moved, told from the join that hands the keys on, names the customers comparing the two builds' links
    in full names (derived.golden.touched_customers): records that joined, left or changed key or confidence. A new
    lead record with a customer record's source and id is another record (it joined, the customer stayed)."""
    _records, links, model = trained
    rows = _changed(_population())
    lead = {**next(r for r in rows if r["source_record_id"] == "E01500"), "record_kind": "lead"}
    after = _frame([*rows, lead])
    incremental = Model(threshold=0.95, trained=model.trained, tf_total=model.tf_total)
    incremental.kept = _kept(model, tmp_path, NOW)
    graph = Graph()
    ours = resolve(after, incremental, previous=links, graph=graph)

    assert graph.moved is not None
    compared = touched_customers(links, ours, {})["customer_key"].sort()
    assert graph.moved.sort().to_list() == compared.to_list()
    was, now = _keys(links), _keys(ours)
    assert {was["wechat:W7"], was["erp:E00102"], now["erp:E00102"], now["pos:N211"]} <= set(compared)
    assert now["erp:E01500"] in set(compared)  # the lead joined


RARE = "欧阳娜"  # a name no generated person has


def _rare_named(rows: list[dict[str, str | None]]) -> list[dict[str, str | None]]:
    """_population with RARE_NAME records named RARE: a person with a POS copy (a pair only pass 2 finds, scored
    with the name's frequency) and persons without copies."""
    chosen = [1000, *[i for i in range(1001, 1100) if i % 3 and i % 10][: RARE_NAME - 2]]
    ids = {f"E{i:05d}" for i in chosen} | {"D100"}  # E01000's POS copy
    return [{**r, "name": RARE} if r["source_record_id"] in ids else r for r in rows]


def test_a_record_moved_a_split_customer_and_a_name_no_longer_rare_resolve_as_in_full(
    trained: tuple[pl.DataFrame, pl.DataFrame, Model], tmp_path: Path
) -> None:
    """Only what changed is scored again, and the links and pairs are a full resolution's. Among the changes:
    E00102 moves to E00105's customer and so splits its own from its WeChat copy W34, and a 21st record named RARE
    takes the name past RARE_NAME: the frequency, so the score, of every pair of that name changes (E01000 and its
    POS copy D100 are scored again, not kept), and so does its name-and-place blocking (here no accepted pair)."""
    _records, _links, model = trained
    rows = _rare_named(_population())
    assert sum(r["name"] == RARE for r in rows) == RARE_NAME
    first = Model(threshold=0.95, trained=model.trained, tf_total=model.tf_total)
    links = resolve(_frame(rows), first)
    stranger = {**rows[50], "source_record_id": "E09998", "phone": "13312340000", "email": "r@x.com", "name": RARE}
    changed = _changed(rows)  # E00102 takes E00105's phone; and its email, so that nothing holds it to W34
    moved = next(r for r in changed if r["source_record_id"] == "E00102")
    moved["email"] = rows[105]["email"]
    after = _frame([*changed, stranger])

    ours_model = Model(threshold=0.95, trained=model.trained, tf_total=model.tf_total)
    ours_model.kept = _kept(first, tmp_path, NOW)
    ours = resolve(after, ours_model, previous=links)
    whole = Model(threshold=0.95, trained=model.trained, tf_total=model.tf_total)
    full = resolve(after, whole, previous=links)

    assert_frame_equal(ours, full)  # keys, rules, confidences
    assert ours_model.pairs is not None and whole.pairs is not None
    assert_frame_equal(ours_model.pairs.sort("node_l", "node_r"), whole.pairs.sort("node_l", "node_r"))
    assert ours_model.stats["records_scored"] < after.height // 10
    key, before = _keys(ours), _keys(links)
    assert key["erp:E00102"] == key["erp:E00105"] != key["wechat:W34"]  # moved, its customer split
    assert before["erp:E00102"] == before["wechat:W34"]
    assert key["pos:D100"] == key["erp:E01000"] == before["erp:E01000"]  # the pair rescored, still one customer
    assert key["erp:E00500"] == before["erp:E00500"]  # an untouched customer keeps its key


def test_too_many_changes_train_the_parameters_again(
    trained: tuple[pl.DataFrame, pl.DataFrame, Model], tmp_path: Path
) -> None:
    _records, links, model = trained
    after = _frame(_changed(_population()))
    retrained = Model(threshold=0.95, trained=model.trained, tf_total=model.tf_total)
    retrained.kept = _kept(model, tmp_path, NOW, max_share=0.001)
    resolve(after, retrained, previous=links)
    assert retrained.stats["resolution"] == f"full: 17 of {after.height:,} records new, changed or gone"
    assert retrained.trained is not None and retrained.trained is not model.trained  # trained in this build
    assert "records_scored" not in retrained.stats

    pinned = Model(threshold=0.95, trained=model.trained, tf_total=model.tf_total)
    pinned.kept = _kept(model, tmp_path, None, max_share=0.001)  # no training date: a pinned model
    resolve(after, pinned, previous=links)
    assert pinned.trained is model.trained  # scored with the pinned parameters, all pairs


# -- when a build resolves all again ------------------------------------------------------------------
def _settings(tmp_path: Path, **identity: object) -> Settings:
    return parse_settings({"data_dir": "data", "identity": identity}, tmp_path)


def _built(tmp_path: Path, model: Model, trained_at: datetime) -> tuple[Store, dict[str, object]]:
    """A data folder whose current build holds ``model``'s resolution, trained at ``trained_at``."""
    store = Store(tmp_path / "data")
    folder = tmp_path / "data" / "derived" / "b1"
    folder.mkdir(parents=True)
    write_state(model, None, folder, trained_at)
    tables = {t: f"derived/b1/{t}.parquet" for t in ("identity_state", "identity_pairs", "identity_model")}
    return store, {"derived": {"tables": tables}}


def test_a_build_builds_on_the_last_one_until_full_or_old(
    trained: tuple[pl.DataFrame, pl.DataFrame, Model], tmp_path: Path
) -> None:
    _records, _links, model = trained
    store, manifest = _built(tmp_path, model, NOW - timedelta(days=3))
    settings = _settings(tmp_path, retrain_days=7)

    kept = kept_resolution(settings, store, manifest, full=False, now=NOW)
    assert kept.reason is None and kept.state is not None and kept.trained == model.trained
    assert model.state is not None and kept.state.height == model.state.height

    assert kept_resolution(settings, store, manifest, full=True, now=NOW).reason == "asked for (--full)"
    old = kept_resolution(settings, store, manifest, full=False, now=NOW + timedelta(days=4))
    assert old.reason == "parameters older than retrain_days = 7" and old.trained is None
    other = kept_resolution(_settings(tmp_path, match_threshold=0.9), store, manifest, full=False, now=NOW)
    assert other.reason == "the identity code or the match threshold changed" and other.trained is None
    assert kept_resolution(settings, store, {}, full=False, now=NOW).reason == "no earlier resolution to build on"


def test_a_pinned_model_is_never_trained_again(
    trained: tuple[pl.DataFrame, pl.DataFrame, Model], tmp_path: Path
) -> None:
    _records, _links, model = trained
    store, manifest = _built(tmp_path, model, NOW - timedelta(days=300))
    (tmp_path / "model.json").write_text(
        json.dumps({"splink": model.trained, "tf_total": model.tf_total}), encoding="utf-8"
    )
    settings = _settings(tmp_path, model="model.json", retrain_days=1)
    kept = kept_resolution(settings, store, manifest, full=False, now=NOW)
    assert kept.reason is None and kept.trained == model.trained and kept.trained_at is None
    full = kept_resolution(settings, store, manifest, full=True, now=NOW)
    assert full.reason == "asked for (--full)" and full.trained == model.trained and full.state is None


def test_a_bad_model_file_or_setting_is_named(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"splink": {}}', encoding="utf-8")
    settings = _settings(tmp_path, model="model.json")
    with pytest.raises(ConfigError, match=r"model\.json: not an identity model file"):
        kept_resolution(settings, Store(tmp_path / "data"), {}, full=False, now=NOW)
    with pytest.raises(ConfigError, match="identity model file not found"):
        kept_resolution(_settings(tmp_path, model="nope.json"), Store(tmp_path / "data"), {}, full=False, now=NOW)
    for key, value in (("retrain_changed_share", 0), ("retrain_changed_share", 1.5), ("retrain_days", 0)):
        with pytest.raises(ConfigError, match=f"identity.{key}"):
            _settings(tmp_path, **{key: value})


# -- through the refresh, on the fixture company ------------------------------------------------------
def _identity_model(settings: Settings) -> dict[str, Any]:
    store = Store(settings.data_path)
    rel = store.read_manifest()["derived"]["tables"]["identity_model"]
    return pl.read_parquet(store.abs(rel)).row(0, named=True)


def _links(settings: Settings) -> pl.DataFrame:
    store = Store(settings.data_path)
    return pl.read_parquet(store.abs(store.read_manifest()["derived"]["tables"]["identity_links"]))


def test_a_refresh_resolves_a_new_lead_incrementally_and_full_trains_again(company: Settings) -> None:
    first = _identity_model(company)
    assert first["resolution"] == "full: no earlier resolution to build on" and first["trained_at"] is not None
    leads = company.base_dir / "imports" / "crm" / "leads.csv"
    # a new lead with a known phone (pass 1 puts it with CRM-3) and a new stranger
    leads.write_text(
        leads.read_text(encoding="utf-8") + "CRM-90,2026-03-01,SEM,13900130003,,rep1\n"
        "CRM-91,2026-03-02,SEM,13912345678,x91@example.com,rep1\n",
        encoding="utf-8",
    )
    assert refresh(company, ["crm"]).exit_code == 0
    second = _identity_model(company)
    assert second["resolution"] == "incremental" and second["changed"] == 2
    assert second["trained_at"] == first["trained_at"] and second["model_json"] == first["model_json"]
    key = _keys(_links(company))
    assert key["crm:CRM-90"] == key["crm:CRM-3"] != key["crm:CRM-91"]

    cfg = company.base_dir / "cockpit.toml"
    out = cockpit("--config", str(cfg), "identity", "export-model", "model.json", cwd=company.base_dir)
    assert out.returncode == 0, out.stderr
    assert refresh(company, full=True).exit_code == 0
    third = _identity_model(company)
    assert third["resolution"] == "full: asked for (--full)" and third["trained_at"] > first["trained_at"]
    assert _keys(_links(company)) == key  # the same customers, keys handed on

    cfg.write_text(cfg.read_text(encoding="utf-8") + '\n[identity]\nmodel = "model.json"\n', encoding="utf-8")
    pinned = load_settings(cfg)
    assert refresh(pinned, full=True).exit_code == 0
    fourth = _identity_model(pinned)
    assert fourth["trained_at"] is None and fourth["model_json"] == second["model_json"]


# -- what an incremental build takes as kept --------------------------------------------------------------
def _members(rows: list[tuple[int, str]]) -> pl.DataFrame:
    """(component, record) → assign_keys' members: every record a customer of source s."""
    return pl.DataFrame(
        {
            "component": [c for c, _ in rows],
            "uid": [f"customer:s:{r}" for _, r in rows],
            "ref": [f"s:{r}" for _, r in rows],
        },
        schema={"component": pl.Int64, "uid": pl.String, "ref": pl.String},
    )


def test_a_customer_kept_whole_keeps_its_key_as_the_vote_gives_it() -> None:
    from dashboard.derived.identity import _fresh_key, _voted_keys, assign_keys

    clash = _fresh_key("customer:s:p")  # the key a new record p would get fresh is a kept customer's
    before = {"a": "K1", "b": "K1", "c": "K2", "d": "K2", "f": "K3", "g": "K3", "h": "K3", "i": "K4", "j": "K5"}
    before |= {"k": "K5", "z": "K6", "m": "K6", "n": "K7", "n2": "K7", "q": clash, "gone": "K9", "x": "K9"}
    previous = pl.DataFrame(
        {"source_system": "s", "source_record_id": list(before), "customer_key": list(before.values())}
    )
    members = _members(
        [
            *[(0, "a"), (0, "b")],  # the same customer
            *[(1, "c"), (1, "d"), (1, "e")],  # a new record joins K2
            *[(2, "f"), (2, "g"), (3, "h")],  # K3 split: h leaves
            *[(4, "i"), (4, "j"), (4, "k")],  # K4 merged into K5
            *[(5, "m"), (6, "z"), (6, "n"), (6, "n2")],  # z moved from K6 to K7
            *[(7, "o"), (8, "p"), (9, "q"), (10, "x")],  # new records; q and x kept alone (x's mate gone)
        ]
    )
    prev = previous.select((pl.col("source_system") + ":" + pl.col("source_record_id")).alias("ref"), "customer_key")
    ours = assign_keys(members, previous).sort("component")
    voted = _voted_keys(members, prev, pl.Series("customer_key", [], dtype=pl.String)).sort("component")

    assert_frame_equal(ours, voted)
    key = dict(ours.iter_rows())
    assert (key[0], key[1], key[2], key[4], key[6], key[9], key[10]) == ("K1", "K2", "K3", "K5", "K7", clash, "K9")
    assert key[5] == "K6" and key[3] == _fresh_key("customer:s:h") and key[7] == _fresh_key("customer:s:o")
    assert key[8] == _fresh_key("customer:s:p#1")  # its fresh key is taken by a kept customer: salted


_READ_AGAIN = """
import json, sys
from pathlib import Path
import polars as pl
from dashboard.core.parse import pinyin
from dashboard.core.store import Store
from dashboard.derived.identity import known_readings
manifest = {"derived": {"tables": {"identity_pinyin": "derived/b1/identity_pinyin.parquet"}}}
known = known_readings(Store(Path(sys.argv[1])), manifest)
names = pinyin(pl.Series(["王伟", "伟娜", None])).to_list()
print(json.dumps({"known": known, "names": names, "pypinyin": "pypinyin" in sys.modules}))
"""


def _read_again(data: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _READ_AGAIN, str(data)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_the_next_build_reads_names_of_known_characters_without_pypinyin(tmp_path: Path) -> None:
    from dashboard.core.parse import pinyin

    assert pinyin(pl.Series(["王伟", "李娜"])).to_list() == ["wang wei", "li na"]
    folder = tmp_path / "data" / "derived" / "b1"
    folder.mkdir(parents=True)
    write_state(None, None, folder, NOW)  # the readings this process looked up

    again = _read_again(tmp_path / "data")
    assert again["known"] >= 4 and again["names"] == ["wang wei", "wei na", None]
    assert not again["pypinyin"]  # every character known: pypinyin not loaded

    kept = pl.read_parquet(folder / "identity_pinyin.parquet")
    kept.with_columns(pl.lit("0.1").alias("pypinyin")).write_parquet(folder / "identity_pinyin.parquet")
    other = _read_again(tmp_path / "data")  # readings of another pypinyin: looked up again
    assert other["known"] == 0 and other["names"] == ["wang wei", "wei na", None] and other["pypinyin"]


def test_fresh_keys_are_the_same_made_in_python_or_by_duckdb(monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.derived import identity
    from dashboard.derived.identity import _fresh_key, _voted_keys

    members = _members([(i, f"r{i}") for i in range(40)])
    none = pl.Series("customer_key", [], dtype=pl.String)
    few = _voted_keys(members, None, none).sort("component")  # an incremental build's few: in Python
    monkeypatch.setattr(identity, "FEW_FRESH", 0)
    many = _voted_keys(members, None, none).sort("component")  # a full build's many: DuckDB's md5
    assert_frame_equal(few, many)
    assert few["customer_key"][7] == _fresh_key("customer:s:r7")
