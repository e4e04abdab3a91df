"""First-pass identity: exact matches on valid phone / email / ID number make one customer_key."""

from __future__ import annotations

import polars as pl

from dashboard.identity import MAX_SHARED, link_exact

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
