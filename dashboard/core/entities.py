"""The canonical entities every source is mapped onto: their columns, types and required fields."""

from __future__ import annotations

import re
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

# Where an optional field applies, when not on every row: its fill rate is judged over those rows only (the quality
# page, health, catalog and `cockpit quality` show that one rate). Declared, not guessed from the data: a column
# filled for one value of another and empty for the rest may be exactly the gap a steward must see.
# Per source, [quality.applies_when] in the config adds to these or overrides them ("always": every row; "never":
# an optional field, its fill rate not judged).
ALWAYS, NEVER = "always", "never"
APPLIES_WHEN: dict[tuple[str, str], str] = {
    ("lead_events", "amount"): "stage = won",  # revenue is the won event's amount; other stages carry none
    ("customers", "industry"): "company is filled",  # a company's industry: a private person has none
    ("customers", "id_number"): "company is empty",  # a person's resident ID (its check): a company has none
    ("interactions", "customer_ref"): "lead_id is empty",  # with a customer or a lead: one of the two names it
    ("interactions", "lead_id"): "customer_ref is empty",
    ("leads", "customer_ref"): NEVER,  # a link to the customer record where the lead is one's: a new prospect has none
}
_CONDITION = re.compile(
    r"^\s*(?P<col>[a-z_]+)\s*(?:(?P<eq>=)\s*(?P<one>[^,()'\"=\\]+?)|(?P<in>in)\s*\((?P<many>[^()'\"=\\]+)\)"
    r"|is\s+(?P<state>filled|empty))\s*$"
)


@dataclass(frozen=True)
class Condition:
    """Rows of an entity a field applies to: ``column`` in ``values``, or (values None) ``column`` filled, or
    (``empty``) not filled; ``never``: none (an optional field, whose fill rate is not judged)."""

    column: str
    values: tuple[str, ...] | None = None
    empty: bool = False
    never: bool = False

    @property
    def text(self) -> str:
        """The canonical spelling, as the profile stores it: ``stage = won``, ``channel in (a, b)``."""
        if self.never:
            return NEVER
        if self.values is None:
            return f"{self.column} is {'empty' if self.empty else 'filled'}"
        if len(self.values) == 1:
            return f"{self.column} = {self.values[0]}"
        return f"{self.column} in ({', '.join(self.values)})"

    def sql(self, present: bool = True, param: str = "value") -> tuple[str, dict[str, str]]:
        """The rows it names as a SQL condition (DuckDB and Spark alike) and its parameters: the values are bound
        as ``$<param>_<i>``, never written into the text; ``present`` False: the rows hold no such column (it is
        empty on every row)."""
        col = f'"{self.column}"'
        if self.never:
            return "false", {}
        if not present:
            return ("true" if self.empty else "false"), {}
        if self.values is None:
            return f"{col} IS {'' if self.empty else 'NOT '}NULL", {}
        args = {f"{param}_{i}": v for i, v in enumerate(self.values)}
        return f"coalesce({col} IN ({', '.join('$' + k for k in args)}), false)", args


def parse_condition(entity: str, text: str) -> Condition:
    """``stage = won`` / ``channel in (a, b)`` / ``company is filled`` / ``lead_id is empty`` over one of the
    entity's columns, or ``never``; a ValueError says what is wrong."""
    if text.strip() == NEVER:
        return Condition("", never=True)
    m = _CONDITION.match(text)
    if m is None:
        raise ValueError(
            f"'{text}' is not a condition: write 'column = value', 'column in (a, b)', 'column is filled', "
            "'column is empty' or 'never'"
        )
    ent = ENTITIES[entity]
    if m["col"] not in ent.column_names:
        raise ValueError(f"'{m['col']}' is not a column of {entity} ({', '.join(ent.column_names)})")
    if m["state"]:
        return Condition(m["col"], None, m["state"] == "empty")
    if ent.column(m["col"]).type != "str":
        raise ValueError(f"'{m['col']}' is not a text column: write '{m['col']} is filled' or 'is empty'")
    values = (m["one"].strip(),) if m["eq"] else tuple(v.strip() for v in m["many"].split(","))
    if not all(values):
        raise ValueError(f"'{text}' names an empty value")
    return Condition(m["col"], values)


def applies_when(entity: str, overrides: dict[str, str] | None = None) -> dict[str, Condition]:
    """column → the rows of ``entity`` it applies to, where not every row: APPLIES_WHEN, then ``overrides``
    (column → condition text, or "always")."""
    texts = {c: text for (e, c), text in APPLIES_WHEN.items() if e == entity} | (overrides or {})
    return {c: parse_condition(entity, text) for c, text in texts.items() if text != ALWAYS}
