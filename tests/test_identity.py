"""Identity: exact matches on valid phone / email / ID number first, then Splink; stable keys; overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dashboard.core.errors import ConfigError
from dashboard.derived.identity import (
    MAX_SHARED,
    Model,
    Override,
    evaluate,
    link_exact,
    pinyin,
    read_overrides,
    resolve,
)

COLS = ("source_system", "source_record_id", "record_kind", "phone", "email", "id_number", "customer_ref")


def _records(rows: list[tuple[str | None, ...]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=dict.fromkeys(COLS, pl.String), orient="row")


def _keys(df: pl.DataFrame) -> dict[str, str]:
    return dict(zip(df["source_system"] + ":" + df["source_record_id"], df["customer_key"], strict=True))


def test_shared_values_chain_records_into_one_customer() -> None:
    links = link_exact(
        _records(
            [
                ("erp", "E1", "customer", "13800138000", None, None, None),
                ("wechat", "W1", "customer", "13800138000", "a@x.com", None, None),
                ("crm", "L1", "lead", None, "a@x.com", None, None),  # joins through W1's email
                ("crm", "L2", "lead", "13900139000", None, None, "K9"),  # its own customer K9
                ("crm", "K9", "customer", None, None, None, None),
                ("pos", "P1", "customer", "13700137000", None, None, None),
            ]
        )
    )
    key = _keys(links)
    assert key["erp:E1"] == key["wechat:W1"] == key["crm:L1"]
    assert key["crm:L2"] == key["crm:K9"]
    assert len({key["erp:E1"], key["crm:L2"], key["pos:P1"]}) == 3
    rules = dict(zip(links["source_record_id"], links["match_rule"], strict=True))
    assert rules["W1"] == "exact:email+phone" and rules["P1"] == "single"


def test_a_caller_number_used_as_reference_links_by_phone() -> None:
    links = link_exact(
        _records(
            [
                ("erp", "E1", "customer", "13800138000", None, None, None),
                ("call_center", "013800138000", "customer", None, None, None, None),
            ]
        )
    )
    key = _keys(links)
    assert key["erp:E1"] == key["call_center:013800138000"]


def test_placeholder_values_do_not_merge_strangers() -> None:
    rows = [("crm", f"L{i}", "lead", "13800000000", None, None, None) for i in range(MAX_SHARED + 1)]
    assert link_exact(_records(rows)).get_column("customer_key").n_unique() == MAX_SHARED + 1


def test_keys_are_stable_when_input_order_changes() -> None:
    rows = [
        ("erp", "E1", "customer", "13800138000", None, None, None),
        ("pos", "P1", "customer", "13800138000", None, None, None),
        ("pos", "P2", "customer", "13700137000", None, None, None),
    ]
    assert _keys(link_exact(_records(rows))) == _keys(link_exact(_records(rows[::-1])))


# -- pass 2 (Splink), stable keys, overrides, evaluation ------------------------------------------
FULL = (*COLS, "phone_invalid", "email_invalid", "name", "company", "city", "region")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


def _people(n: int = 3000, seed: int = 7) -> list[dict[str, str | None]]:
    """n persons, each an ERP customer with a name, a valid phone and a city."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        name = SURNAMES[rng.integers(len(SURNAMES))] + "".join(rng.choice(list(GIVEN), size=rng.integers(1, 3)))
        rows.append(
            {
                "source_system": "erp",
                "source_record_id": f"E{i:05d}",
                "record_kind": "customer",
                "phone": f"13{rng.integers(0, 10**9):09d}",
                "email": f"user{i}@example.com",
                "name": name,
                "city": ["北京", "上海", "广州", "深圳", "杭州", "成都"][i % 6],
                "company": None,
                "region": None,
            }
        )
    return rows


def _frame(rows: list[dict[str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame([{c: r.get(c) for c in FULL} for r in rows], schema=dict.fromkeys(FULL, pl.String))


def test_probabilistic_pass_links_a_short_phone_and_mistyped_email_but_not_a_namesake() -> None:
    people = _people()
    a, b, c = people[10], people[20], people[30]
    a["name"] = "王晓伟"  # not one of the test population's ubiquitous two-character names
    # the same person in the POS: homophone typo (伟→玮), the phone a digit short, the email mistyped
    typo = {
        **a,
        "source_system": "pos",
        "source_record_id": "P1",
        "phone": None,
        "phone_invalid": a["phone"][:10],
        "email": None,
        "email_invalid": "USER10@example",
        "name": a["name"][:-1] + "玮",
    }
    # the same person with the exact name and city, the phone a digit short, '#' for '@' in the email
    short = {
        **b,
        "source_system": "wechat",
        "source_record_id": "W1",
        "phone": None,
        "phone_invalid": b["phone"][:10],
        "email": None,
        "email_invalid": "user20#example.com",
    }
    # a namesake: same name, same city, another valid phone: a different person
    namesake = {**c, "source_system": "pos", "source_record_id": "P2", "phone": "13900000001", "email": None}
    # a third of the persons are also POS members with the same phone (pass 1 links those)
    members = [{**p, "source_system": "pos", "source_record_id": f"M{i}"} for i, p in enumerate(people[::3])]
    records = _frame([*people, *members, typo, short, namesake])
    exact = _keys(link_exact(records))
    model = Model(threshold=0.95)
    links = resolve(records, model)
    key = _keys(links)
    assert exact["pos:P1"] != exact["erp:E00010"]  # pass 1 alone misses both
    assert (
        pinyin(pl.Series(["王晓伟", "王晓玮"])).to_list() == ["wang xiao wei"] * 2
    )  # the typo compares as equal pinyin
    assert key["pos:P1"] == key["erp:E00010"]  # the homophone typo links
    assert key["wechat:W1"] == key["erp:E00020"]
    assert key["pos:P2"] != key["erp:E00030"]
    conf = dict(zip(links["source_record_id"], links["confidence"], strict=True))
    rules = dict(zip(links["source_record_id"], links["match_rule"], strict=True))
    assert rules["W1"] == "probabilistic" and 0.95 <= conf["W1"] < 1.0
    assert rules["P1"] == "probabilistic" and 0.95 <= conf["P1"] < 1.0
    assert rules["P2"] == "single" and conf["P2"] == 1.0
    assert links.height == records.height


def test_a_model_trained_on_a_sample_scores_names_by_their_frequency_in_all_records() -> None:
    # 3,000 persons with a company each; every fifth typed again as a CRM lead: name, company and city, no phone or
    # email. Whether such a lead joins its person turns on how common its name is (term frequency).
    people = _people()
    for i, p in enumerate(people):
        p["company"] = f"公司{i % 400:03d}科技有限"
    leads = [
        {**p, "source_system": "crm", "source_record_id": f"L{i}", "record_kind": "lead", "phone": None, "email": None}
        for i, p in enumerate(people[::5])
    ]
    records = _frame([*people, *leads])
    # trained on a sample of whole name groups, about a seventh of the named records (at large: a seventeenth)
    model = Model(threshold=0.95, train_records=500)
    links = resolve(records, model)
    # the same parameters given, as an incremental build scores with them: a name's count over every named record
    again = Model(threshold=0.95, trained=model.trained, tf_total=model.tf_total)
    assert model.tf_total == records.height > 6 * model.train_records
    assert_frame_equal(resolve(records, again), links)
    assert model.stats["pairs_linked"] == again.stats["pairs_linked"]
    key = _keys(links)
    joined = sum(key[f"crm:L{i}"] == key[f"erp:{p['source_record_id']}"] for i, p in enumerate(people[::5]))
    assert joined >= 0.9 * len(leads)  # scored with the sample's frequencies (each name's ~7x): none joined


def test_a_customer_keeps_its_key_when_a_new_record_joins() -> None:
    rows = [
        ("erp", "E5", "customer", "13800138000", None, None, None),
        ("pos", "P7", "customer", "13800138000", None, None, None),
        ("pos", "P8", "customer", "13700137000", None, None, None),
    ]
    before = _keys(link_exact(_records(rows)))
    # a record whose id sorts first (it would name the customer if keys were made afresh)
    grown = _records([("crm", "A0", "customer", "13800138000", None, None, None), *rows])
    after_links = resolve(grown, previous=link_exact(_records(rows)))
    after = _keys(after_links)
    assert after["crm:A0"] == after["erp:E5"] == before["erp:E5"]
    assert after["pos:P8"] == before["pos:P8"]
    # split apart by an override: the part holding more of the old records keeps the key, the other a new one
    split = resolve(
        grown,
        overrides=[Override("split", "crm:A0", "erp:E5"), Override("split", "crm:A0", "pos:P7")],
        previous=after_links,
    )
    keys = _keys(split)
    assert keys["erp:E5"] == keys["pos:P7"] == before["erp:E5"]
    assert keys["crm:A0"] not in set(before.values())


def test_overrides_win_over_both_passes(tmp_path: Path) -> None:
    path = tmp_path / "overrides.csv"
    path.write_text(
        "action,source_system,source_record_id,other_source_system,other_source_record_id,note\n"
        "merge,erp,E1,pos,P9,same company account\n"
        "split,erp,E2,pos,P2,shared family phone\n"
        "detach,crm,C3,,,test record\n",
        encoding="utf-8",
    )
    overrides = read_overrides(path)
    records = _records(
        [
            ("erp", "E1", "customer", "13800000001", None, None, None),
            ("pos", "P9", "customer", "13900000009", None, None, None),
            ("erp", "E2", "customer", "13800000002", None, None, None),
            ("pos", "P2", "customer", "13800000002", None, None, None),
            ("crm", "C3", "customer", "13800000001", None, None, None),
        ]
    )
    plain, forced = _keys(link_exact(records)), resolve(records, overrides=overrides)
    key = _keys(forced)
    assert plain["erp:E1"] != plain["pos:P9"] and key["erp:E1"] == key["pos:P9"]
    assert plain["erp:E2"] == plain["pos:P2"] and key["erp:E2"] != key["pos:P2"]
    assert plain["crm:C3"] == plain["erp:E1"] and key["crm:C3"] != key["erp:E1"]
    rules = dict(zip(forced["source_record_id"], forced["match_rule"], strict=True))
    assert rules["P9"] == "override"


def test_a_bad_override_line_names_the_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "overrides.csv"
    path.write_text(
        "action,source_system,source_record_id,other_source_system,other_source_record_id\n"
        "merge,erp,E1,pos,P9\nglue,erp,E2,pos,P2\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"overrides.csv: row 3, column action: 'glue'"):
        read_overrides(path)
    path.write_text("action,source_system\nmerge,erp\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing column"):
        read_overrides(path)


def test_pairwise_scores_count_pairs() -> None:
    links = pl.DataFrame(
        {"source_system": ["a"] * 4, "source_record_id": ["1", "2", "3", "4"], "customer_key": ["K", "K", "K", "J"]}
    )
    truth = pl.DataFrame({"source_system": ["a"] * 4, "source_record_id": [1, 2, 3, 4], "person_id": list("PPQQ")})
    score = evaluate(links, truth)  # linked pairs 12, 13, 23; true pairs 12, 34; correct 12
    assert (score.predicted_pairs, score.true_pairs, score.correct_pairs) == (3, 2, 1)
    assert score.precision == pytest.approx(1 / 3) and score.recall == pytest.approx(0.5)
    assert score.f1 == pytest.approx(0.4)


def test_redirects_follow_merges_across_builds_and_drop_keys_that_return() -> None:
    from datetime import datetime

    from dashboard.derived.identity import redirects

    def links(*rows: tuple[str, str]) -> pl.DataFrame:
        return pl.DataFrame(
            [("crm", rec, key) for rec, key in rows],
            schema=["source_system", "source_record_id", "customer_key"],
            orient="row",
        )

    monday, tuesday = datetime(2026, 11, 16), datetime(2026, 11, 17)
    build1 = links(("a", "K1"), ("b", "K2"), ("c", "K2"), ("d", "K3"))
    build2 = links(("a", "K1"), ("b", "K1"), ("c", "K4"), ("d", "K3"))  # K2 split: b to K1, c to K4
    first = redirects(build1, build2, None, monday)
    # a tie (one record each) goes to the smaller key
    assert first.rows() == [("K2", "K1", monday)]
    build3 = links(("a", "K3"), ("b", "K3"), ("c", "K4"), ("d", "K3"))  # K1 merged into K3
    second = redirects(build2, build3, first, tuesday)
    assert second.rows() == [("K1", "K3", tuesday), ("K2", "K3", monday)]  # K2 → K1 → K3, re-pointed
    build4 = links(("a", "K1"), ("b", "K3"), ("c", "K4"), ("d", "K3"))  # K1 is a customer again
    third = redirects(build3, build4, second, tuesday)
    assert third.rows() == [("K2", "K3", monday)]
    assert redirects(None, build1, None, monday).is_empty()  # a first build has nothing to redirect


_E = ("erp", "E", "customer", "13800000003", None, None, None)
_F = ("erp", "F", "customer", "13800000004", None, None, None)


def test_redirects_told_by_the_keys_vote_are_those_its_joins_find() -> None:
    """A build's redirects from the keys' vote (Graph.merged) are the rows redirects' own joins give: two customers
    merged, a customer's records gone, an earlier redirect re-pointed, a record known as a customer and a lead."""
    from datetime import datetime

    from dashboard.derived.identity import Graph, redirects

    def build(rows: list[tuple[str | None, ...]], previous: pl.DataFrame | None) -> tuple[pl.DataFrame, Graph]:
        graph = Graph()
        return resolve(_records(rows), previous=previous, graph=graph), graph

    kept = [("crm", "A", "customer"), ("crm", "B", "customer"), ("crm", "C", "customer"), ("crm", "C", "lead")]
    kept.append(("erp", "D", "customer"))
    phones = ["13800000001"] * 2 + ["13800000002"] * 3  # two customers: A, B and C, C's lead, D
    first, _ = build([(*r, p, None, None, None) for r, p in zip(kept, phones, strict=True)] + [_E], None)
    second, graph = build([(*r, "13800000001", None, None, None) for r in kept] + [_F], first)  # one; E gone, F new
    keys = _keys(first)
    earlier = pl.DataFrame(
        {"old_key": ["C000000000000", keys["erp:E"]], "customer_key": [keys["crm:C"], keys["crm:A"]]}
    ).with_columns(pl.lit(datetime(2026, 11, 16)).alias("merged_at"))
    now = datetime(2026, 11, 17)
    assert graph.merged is not None
    told = redirects(first, second, earlier, now, graph.merged)
    assert_frame_equal(told, redirects(first, second, earlier, now))
    assert told.height == 3  # the key that lost the vote, and the two earlier redirects re-pointed to the winner
    assert set(told["customer_key"]) == {_keys(second)["crm:A"]}
