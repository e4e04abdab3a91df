"""One definition for two engines: the DuckDB SQL of a derived step, rewritten for Spark SQL with sqlglot.

sqlglot's own duckdb → spark transpiling gets these wrong *without an error* (measured), so they are
rewritten on the parse tree first, and every statement that runs on Spark has a test running it on both
engines (tests/test_spark_sql.py):

- ``epoch(a - b)`` (seconds of an interval) became ``UNIX_TIMESTAMP(a - b)``: → ``epoch(a) - epoch(b)``;
- ``epoch(ts)`` lost its fraction of a second: → ``unix_micros(ts) / 1e6``;
- ``date_diff('second', a, b)`` (boundaries crossed) → the difference of the whole epoch seconds;
- a decimal literal (``1.0 / n``) is a DECIMAL in Spark, whose division rounds to 6 places; DuckDB
  divides in DOUBLE: → ``CAST(1.0 AS DOUBLE)``;
- DuckDB's ``levenshtein`` and ``jaro_winkler_similarity`` compare UTF-8 bytes (a Chinese character is three),
  Spark's ``levenshtein`` characters: both sides go to Spark one character per byte (decoded as ISO-8859-1),
  and Jaro-Winkler is the ``jaro_winkler`` function of the jar Splink ships (its Spark linker registers it);
- ``list(x ORDER BY k)`` became ``COLLECT_LIST(x)``, its order lost: → the list sorted (by ``x`` itself, or
  by the keys carried beside it in a struct); a descending key other than ``x`` is an error, not a guess.
  (Spark's lists also skip NULLs where DuckDB's keep them: the steps on Spark aggregate no NULL into one.)
- ``trim(x)`` strips every Unicode space separator in DuckDB (a full-width space too), only ASCII spaces in
  Spark: → the separators (``\\p{Zs}``) removed at either end by a regular expression.
- ``round(x, n)`` of a DOUBLE is ``round(x * 10^n) / 10^n`` in DuckDB, half away from zero; Spark rounds
  the shortest decimal that prints the double (1.005 → 1.01 where DuckDB gives 1.0, 1.005 being
  1.00499999... in binary): → DuckDB's own arithmetic, rounded at scale 0, where both agree.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

_MICROS = "unix_micros(CAST({x} AS TIMESTAMP)) / CAST(1000000 AS DOUBLE)"
_SECONDS = "unix_seconds(CAST({x} AS TIMESTAMP))"
_BYTES = "decode(encode({x}, 'UTF-8'), 'ISO-8859-1')"  # one character per UTF-8 byte, as DuckDB compares
_BYTEWISE: dict[type[exp.Expression], str] = {exp.Levenshtein: "levenshtein", exp.JarowinklerSimilarity: "jaro_winkler"}


def _spark(template: str, node: exp.Expression) -> exp.Expression:
    return exp.Paren(this=sqlglot.parse_one(template.format(x=node.sql(dialect="spark")), read="spark"))


def _ordered_list(node: exp.ArrayAgg) -> exp.Expression:
    order = node.this
    value = order.this.transform(_rewrite)
    keys = [o.this.transform(_rewrite) for o in order.expressions]
    desc = [bool(o.args.get("desc")) for o in order.expressions]
    if isinstance(value, exp.Distinct):
        value = exp.Distinct(expressions=value.expressions)
        plain = value.expressions[0] if len(value.expressions) == 1 else None
    else:
        plain = value
    if len(keys) == 1 and plain is not None and keys[0] == plain:
        agg = exp.ArrayAgg(this=value).sql(dialect="spark")
        return exp.Paren(this=sqlglot.parse_one(f"SORT_ARRAY({agg}, {'FALSE' if desc[0] else 'TRUE'})", read="spark"))
    if any(desc) or isinstance(value, exp.Distinct):
        raise ValueError(f"no Spark SQL for {node.sql(dialect='duckdb')}: sort it by its own value, ascending")
    fields = ", ".join(f"{k.sql(dialect='spark')} AS k{i}" for i, k in enumerate(keys))
    pairs = f"COLLECT_LIST(STRUCT({fields}, {value.sql(dialect='spark')} AS v))"
    return exp.Paren(this=sqlglot.parse_one(f"TRANSFORM(ARRAY_SORT({pairs}), e -> e.v)", read="spark"))


def _trimmed(node: exp.Trim) -> exp.Expression:
    position = str(node.args.get("position") or "").upper()
    ends = {"LEADING": ["^"], "TRAILING": ["$"]}.get(position, ["^", "$"])
    pattern = "|".join(r"^\p{Zs}+" if end == "^" else r"\p{Zs}+$" for end in ends)
    return exp.RegexpReplace(
        this=node.this.transform(_rewrite), expression=exp.Literal.string(pattern), replacement=exp.Literal.string("")
    )


def _to_cents(decimals: exp.Expression | None) -> bool:
    """A ``round(x, n)`` whose ``n`` is a positive whole number (at scale 0 both engines round alike)."""
    return isinstance(decimals, exp.Literal) and decimals.is_int and int(decimals.this) > 0


def _rounded(node: exp.Round) -> exp.Expression:
    power = f"POWER(10, {int(node.args['decimals'].this)})"
    return _spark(f"ROUND(CAST({{x}} AS DOUBLE) * {power}) / {power}", node.this.transform(_rewrite))


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order):
        return _ordered_list(node)
    if isinstance(node, exp.Trim) and node.args.get("expression") is None:
        return _trimmed(node)
    if isinstance(node, exp.Round) and _to_cents(node.args.get("decimals")):
        return _rounded(node)
    if isinstance(node, exp.TimeToUnix):
        inner = node.this
        if isinstance(inner, exp.Sub):  # seconds of an interval: the difference of the two instants
            left, right = _spark(_MICROS, inner.this), _spark(_MICROS, inner.expression)
            return exp.Paren(this=exp.Sub(this=left, expression=right))
        return _spark(_MICROS, inner)
    if isinstance(node, exp.DateDiff) and (node.unit and node.unit.name.upper() == "SECOND"):
        return exp.Paren(this=exp.Sub(this=_spark(_SECONDS, node.this), expression=_spark(_SECONDS, node.expression)))
    if type(node) in _BYTEWISE:
        sides = [sqlglot.parse_one(_BYTES.format(x=x.sql(dialect="spark"))) for x in (node.this, node.expression)]
        return exp.Anonymous(this=_BYTEWISE[type(node)], expressions=sides)
    if isinstance(node, exp.Literal) and not node.is_string and any(c in node.this for c in ".eE"):
        return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
    return node


def to_spark(sql: str) -> str:
    """``sql`` (DuckDB dialect, one statement) as Spark SQL."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    return tree.transform(_rewrite).sql(dialect="spark")


def to_spark_condition(sql: str) -> str:
    """A condition in DuckDB SQL (a Splink comparison level's, a blocking rule's) as Spark SQL; ``ELSE``
    (Splink's last level) as it is."""
    if sql.strip().upper() == "ELSE":
        return sql
    return sqlglot.parse_one(sql, read="duckdb").transform(_rewrite).sql(dialect="spark")
