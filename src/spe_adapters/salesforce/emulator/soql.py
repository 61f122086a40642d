"""A SOQL subset: tokenizer, parser and evaluator.

Supports ``SELECT f1, f2 FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS
FIRST|LAST], ...] [LIMIT n] [OFFSET n]`` and ``SELECT COUNT() FROM ...``, with
conditions ``= != <> < <= > >= IN NOT IN LIKE``, ``AND / OR / NOT`` and
parentheses; literals: single-quoted strings with backslash escapes (exactly
as ``simple_salesforce.format.format_soql`` writes them), numbers, ``true`` /
``false`` / ``null``, dates, datetimes (``Z`` or ``+00:00`` offsets) and the
date literals ``TODAY``, ``YESTERDAY`` and ``LAST_N_DAYS:n``.

A string literal can never change a query's structure: the tokenizer reads
it whole, escapes included, before the parser sees anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs

__all__ = ["Query", "SoqlError", "parse"]


class SoqlError(ValueError):
    """A malformed query (reported as MALFORMED_QUERY)."""


_ESCAPES = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "%": "\\%",
    "_": "\\_",
}
_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*(?::\d+)?)
)""",
    re.VERBOSE,
)
_KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "NULL",
    "TRUE",
    "FALSE",
    "COUNT",
}


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body) or body[i + 1] not in _ESCAPES:
                raise SoqlError(
                    f"invalid escape sequence in string literal near {body[i : i + 2]!r}"
                )
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _tokens(text: str) -> list[tuple[str, Any]]:
    pos = 0
    out: list[tuple[str, Any]] = []
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise SoqlError(f"unexpected character at position {pos}: {text[pos : pos + 10]!r}")
        pos = match.end()
        kind = match.lastgroup
        value = match.group(kind or "")
        if kind == "string":
            out.append(("value", _unescape(value[1:-1])))
        elif kind == "datetime":
            v = value.replace("Z", "+00:00")
            if v[-3] != ":":
                v = v[:-2] + ":" + v[-2:]
            out.append(("value", datetime.fromisoformat(v)))
        elif kind == "date":
            out.append(("value", date.fromisoformat(value)))
        elif kind == "number":
            out.append(("value", float(value) if "." in value else int(value)))
        elif kind == "op":
            out.append(("op", "!=" if value == "<>" else value))
        else:
            upper = value.upper()
            if upper in ("NULL", "TRUE", "FALSE"):
                out.append(("value", {"NULL": None, "TRUE": True, "FALSE": False}[upper]))
            elif upper in _KEYWORDS:
                out.append(("kw", upper))
            elif upper in ("TODAY", "YESTERDAY") or upper.startswith("LAST_N_DAYS:"):
                out.append(("dateliteral", upper))
            else:
                out.append(("ident", value))
    return out


Predicate = Callable[[Mapping[str, Any], datetime], bool]


@attrs.frozen
class Query:
    """A parsed query: run it with :meth:`matches` and :meth:`sort_key`."""

    fields: tuple[str, ...]
    sobject: str
    where: Predicate | None
    order: tuple[tuple[str, bool, bool], ...]  # (field, descending, nulls_last)
    limit: int | None
    offset: int
    count_only: bool
    referenced: frozenset[str]

    def matches(self, record: Mapping[str, Any], now: datetime) -> bool:
        """True if ``record`` satisfies the WHERE clause."""
        return self.where is None or self.where(record, now)


def _compare(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, datetime) and isinstance(right, date) and not isinstance(right, datetime):
        left = left.date()
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return bool(
            {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        )
    except TypeError:
        raise SoqlError(
            f"cannot compare {type(left).__name__} with {type(right).__name__}"
        ) from None


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
        i += 1
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def _date_literal(name: str, now: datetime) -> tuple[datetime, datetime]:
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if name == "TODAY":
        return today, today + timedelta(days=1)
    if name == "YESTERDAY":
        return today - timedelta(days=1), today
    days = int(name.split(":")[1])
    return today - timedelta(days=days), today + timedelta(days=1)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.referenced: set[str] = set()

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None, value: Any = None) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise SoqlError("unexpected end of query")
        if (kind is not None and token[0] != kind) or (value is not None and token[1] != value):
            raise SoqlError(f"unexpected token {token[1]!r}; expected {value or kind}")
        self.i += 1
        return token

    def accept(self, kind: str, value: Any = None) -> bool:
        token = self.peek()
        if token is not None and token[0] == kind and (value is None or token[1] == value):
            self.i += 1
            return True
        return False

    def field(self) -> str:
        name = str(self.take("ident")[1])
        self.referenced.add(name)
        return name

    def query(self) -> Query:
        self.take("kw", "SELECT")
        count_only = False
        fields: list[str] = []
        if self.accept("kw", "COUNT"):
            self.take("op", "(")
            self.take("op", ")")
            count_only = True
        else:
            fields.append(self.field())
            while self.accept("op", ","):
                fields.append(self.field())
        self.take("kw", "FROM")
        sobject = str(self.take("ident")[1])
        where = self.condition() if self.accept("kw", "WHERE") else None
        order: list[tuple[str, bool, bool]] = []
        if self.accept("kw", "ORDER"):
            self.take("kw", "BY")
            while True:
                name = self.field()
                descending = self.accept("kw", "DESC")
                if not descending:
                    self.accept("kw", "ASC")
                nulls_last = descending
                if self.accept("kw", "NULLS"):
                    nulls_last = self.accept("kw", "LAST")
                    if not nulls_last:
                        self.take("kw", "FIRST")
                order.append((name, descending, nulls_last))
                if not self.accept("op", ","):
                    break
        limit = offset = None
        if self.accept("kw", "LIMIT"):
            limit = int(self.take("value")[1])
        if self.accept("kw", "OFFSET"):
            offset = int(self.take("value")[1])
        if self.peek() is not None:
            raise SoqlError(f"unexpected token {self.peek()[1]!r} after the query")  # type: ignore[index]
        return Query(
            tuple(fields),
            sobject,
            where,
            tuple(order),
            limit,
            offset or 0,
            count_only,
            frozenset(self.referenced),
        )

    def condition(self) -> Predicate:
        left = self.conjunction()
        while self.accept("kw", "OR"):
            right = self.conjunction()
            left = (lambda a, b: lambda r, n: a(r, n) or b(r, n))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.negation()
        while self.accept("kw", "AND"):
            right = self.negation()
            left = (lambda a, b: lambda r, n: a(r, n) and b(r, n))(left, right)
        return left

    def negation(self) -> Predicate:
        if self.accept("kw", "NOT"):
            inner = self.negation()
            return lambda r, n: not inner(r, n)
        if self.accept("op", "("):
            inner = self.condition()
            self.take("op", ")")
            return inner
        return self.comparison()

    def value(self) -> Any:
        token = self.take()
        if token[0] in ("value", "dateliteral"):
            return token
        raise SoqlError(f"expected a value, found {token[1]!r}")

    def comparison(self) -> Predicate:
        name = self.field()
        negate = self.accept("kw", "NOT")
        if self.accept("kw", "IN"):
            self.take("op", "(")
            values = [self.value()[1]]
            while self.accept("op", ","):
                values.append(self.value()[1])
            self.take("op", ")")
            options = list(values)
            return lambda r, n: (r.get(name) in options) != negate
        if negate:
            raise SoqlError("NOT must be followed by IN here")
        if self.accept("kw", "LIKE"):
            kind, pattern = self.value()
            return lambda r, n: _like(r.get(name), str(pattern))
        op = str(self.take("op")[1])
        if op not in ("=", "!=", "<", "<=", ">", ">="):
            raise SoqlError(f"unknown operator {op!r}")
        kind, raw = self.value()
        if kind == "dateliteral":
            literal = str(raw)

            def by_literal(r: Mapping[str, Any], n: datetime) -> bool:
                lo, hi = _date_literal(literal, n)
                v = r.get(name)
                if v is None:
                    return False
                inside = bool(lo <= v < hi)
                result: bool = {
                    "=": inside,
                    "!=": not inside,
                    "<": v < lo,
                    "<=": v < hi,
                    ">": v >= hi,
                    ">=": v >= lo,
                }[op]
                return result

            return by_literal
        return lambda r, n: _compare(op, r.get(name), raw)


def parse(text: str) -> Query:
    """Parse a SOQL query (raises :class:`SoqlError`)."""
    return _Parser(text).query()
