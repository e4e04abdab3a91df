"""The canonical entities every source is mapped onto: their columns, types and required fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["str", "datetime", "float", "int", "bool"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False


@dataclass(frozen=True)
class Entity:
    name: str
    columns: tuple[Column, ...]
    key: str | None = None  # the record id column, generated when absent and not required

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _cols(spec: str) -> tuple[Column, ...]:
    """Parse ``"*id:str name:str *at:datetime"``; a leading * marks a required column."""
    out = []
    for item in spec.split():
        name, typ = item.split(":")
        out.append(Column(name.lstrip("*"), typ, name.startswith("*")))  # type: ignore[arg-type]
    return tuple(out)


ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity(
            "customers",
            _cols(
                "*source_record_id:str name:str phone:str email:str id_number:str company:str "
                "industry:str region:str city:str owner:str created_at:datetime updated_at:datetime "
                "marketing_consent:bool"
            ),
            key="source_record_id",
        ),
        Entity(
            "leads",
            _cols(
                "*lead_id:str *created_at:datetime *channel:str campaign:str customer_ref:str "
                "name:str phone:str email:str company:str region:str owner:str marketing_consent:bool"
            ),
            key="lead_id",
        ),
        Entity("lead_events", _cols("*lead_id:str *stage:str *occurred_at:datetime amount:float")),
        Entity(
            "orders",
            _cols(
                "order_id:str *customer_ref:str *ordered_at:datetime *amount:float product:str "
                "quantity:float status:str"
            ),
            key="order_id",
        ),
        Entity(
            "interactions",
            _cols(
                "interaction_id:str customer_ref:str lead_id:str *channel:str *kind:str "
                "*occurred_at:datetime outcome:str note:str"
            ),
            key="interaction_id",
        ),
        Entity(
            "contracts",
            _cols(
                "*contract_id:str *customer_ref:str signed_at:datetime amount:float "
                "due_date:datetime paid_amount:float paid_at:datetime"
            ),
            key="contract_id",
        ),
        Entity("marketing_spend", _cols("*channel:str *spend_date:datetime *cost:float campaign:str")),
    )
}

STAGES: tuple[str, ...] = ("lead", "mql", "sql", "opportunity", "won", "lost")

# Columns every canonical row carries besides its entity's own.
LINEAGE_COLUMNS: tuple[str, ...] = ("source_system", "snapshot_id")

# Flags standardization adds next to personal-data columns.
VALIDITY_FLAGS: dict[str, str] = {"phone": "phone_valid", "email": "email_valid", "id_number": "id_number_valid"}
