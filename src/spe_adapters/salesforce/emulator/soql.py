"""A strict SOQL subset: tokenizer, parser and evaluator, following the SOQL and SOSL
Reference (developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta).

Supports ``SELECT f1, f2 FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST],
...] [LIMIT n] [OFFSET n]`` and ``SELECT COUNT() FROM ...``, with conditions ``= != <> < <=
> >= IN NOT IN LIKE``, ``AND / OR / NOT`` and parentheses, parent relationship fields
(``Owner.Name``), and the documented literals: quoted strings with the documented escape
sequences, numbers, ``true`` / ``false`` / ``null``, unquoted dates and datetimes, and the
date literals. Queries are checked against the object's fields and their types, as
Salesforce checks them; anything else is refused with the error Salesforce gives.

A string literal can never change a query's structure: the tokenizer reads it whole,
escapes included, before the parser sees anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs

from spe_adapters.salesforce.emulator.models import REFERENCES, id18, schema

__all__ = [
    "And",
    "Compare",
    "DateLiteral",
    "In",
    "Like",
    "Not",
    "Or",
    "Query",
    "SoqlError",
    "like_pattern",
    "parse",
]

# SOQL and SOSL Reference, OFFSET: "The maximum offset is 2,000 rows. Requesting an offset
# greater than 2,000 results in a NUMBER_OUTSIDE_VALID_RANGE error."
MAX_OFFSET = 2000


class SoqlError(ValueError):
    """A query Salesforce refuses: ``code`` is the errorCode of its 400 reply."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code
        self.offset: int | None = None  # where in the query, when known

    def message_for(self, text: str) -> str:
        """The message as Salesforce words a query error: the query's line, a caret under
        the spot, ``ERROR at Row:r:Column:c`` and the problem."""
        if self.offset is None:
            return str(self)
        offset = min(self.offset, len(text))
        row = text.count("\n", 0, offset) + 1
        line_start = text.rfind("\n", 0, offset) + 1
        line_end = text.find("\n", offset)
        line = text[line_start : None if line_end < 0 else line_end]
        column = offset - line_start + 1
        return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{self}"


# --- tokens ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<temporal>\d{4}-\d{2}-\d{2}(?:T[0-9A-Za-z:.+\-]*)?)
  | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z0-9_]))
  | (?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::\d+)?)
)""",
    re.VERBOSE | re.DOTALL,
)
# SOQL and SOSL Reference, Date Formats and Date Literals: the only literal forms are
# YYYY-MM-DD for date fields and YYYY-MM-DDThh:mm:ss+hh:mm, YYYY-MM-DDThh:mm:ss-hh:mm,
# YYYY-MM-DDThh:mm:ssZ for dateTime fields, unquoted. No fractional seconds, no +hhmm.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})")

# SOQL and SOSL Reference, Reserved Keywords (those this subset uses or refuses)
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
    "GROUP",
    "HAVING",
    "WITH",
    "FOR",
    "USING",
    "INCLUDES",
    "EXCLUDES",
    "TYPEOF",
}
# SOQL and SOSL Reference, Date Formats and Date Literals: the fixed ranges, and those that
# take ``:n``.
_FIXED_LITERALS = {
    "YESTERDAY",
    "TODAY",
    "TOMORROW",
    "LAST_WEEK",
    "THIS_WEEK",
    "NEXT_WEEK",
    "LAST_MONTH",
    "THIS_MONTH",
    "NEXT_MONTH",
    "LAST_90_DAYS",
    "NEXT_90_DAYS",
    "THIS_QUARTER",
    "LAST_QUARTER",
    "NEXT_QUARTER",
    "THIS_YEAR",
    "LAST_YEAR",
    "NEXT_YEAR",
    "THIS_FISCAL_QUARTER",
    "LAST_FISCAL_QUARTER",
    "NEXT_FISCAL_QUARTER",
    "THIS_FISCAL_YEAR",
    "LAST_FISCAL_YEAR",
    "NEXT_FISCAL_YEAR",
}
_N_LITERALS = {
    "LAST_N_DAYS",
    "NEXT_N_DAYS",
    "N_DAYS_AGO",
    "NEXT_N_WEEKS",
    "LAST_N_WEEKS",
    "N_WEEKS_AGO",
    "NEXT_N_MONTHS",
    "LAST_N_MONTHS",
    "N_MONTHS_AGO",
    "NEXT_N_QUARTERS",
    "LAST_N_QUARTERS",
    "N_QUARTERS_AGO",
    "NEXT_N_YEARS",
    "LAST_N_YEARS",
    "N_YEARS_AGO",
    "NEXT_N_FISCAL_QUARTERS",
    "LAST_N_FISCAL_QUARTERS",
    "N_FISCAL_QUARTERS_AGO",
    "NEXT_N_FISCAL_YEARS",
    "LAST_N_FISCAL_YEARS",
    "N_FISCAL_YEARS_AGO",
}

# SOQL and SOSL Reference, Quoted String Escape Sequences: \n \N \r \R \t \T \b \B \f \F
# \" \' \\ and \uXXXX anywhere; \_ and \% in a LIKE expression only; "If you use a backslash
# character in any other context, an error occurs." (\b is a backspace, as
# simple_salesforce's format_soql writes it.)
_ESCAPES = {
    "n": "\n",
    "N": "\n",
    "r": "\r",
    "R": "\r",
    "t": "\t",
    "T": "\t",
    "b": "\b",
    "B": "\b",
    "f": "\f",
    "F": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}


def _decode(body: str, like: bool) -> list[tuple[str, bool]]:
    """A string literal's characters, each with True if it was escaped."""
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append((ch, False))
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in _ESCAPES and nxt:
            out.append((_ESCAPES[nxt], True))
            i += 2
        elif nxt in ("%", "_") and nxt:
            if not like:
                raise SoqlError(
                    f"Invalid string literal: \\{nxt} is only valid in a LIKE expression "
                    "(SOQL Quoted String Escape Sequences)."
                )
            out.append((nxt, True))
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", body[i + 2 : i + 6]):
            out.append((chr(int(body[i + 2 : i + 6], 16)), True))
            i += 6
        else:
            raise SoqlError(
                f"Invalid string literal: invalid escape sequence {body[i : i + 2]!r}; a "
                "backslash must begin one of \\n \\r \\t \\b \\f \\\" \\' \\\\ \\uXXXX "
                "(and \\% \\_ in LIKE)."
            )
    return out


def _temporal(text: str) -> Any:
    if _DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    elif _DATETIME.fullmatch(text):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise SoqlError(
        f"invalid date or dateTime literal {text!r}: use YYYY-MM-DD, or "
        "YYYY-MM-DDThh:mm:ssZ / +hh:mm / -hh:mm, unquoted and without fractional seconds "
        "(SOQL Date Formats)."
    )


def _tokens(text: str, starts: list[int] | None = None) -> list[tuple[str, Any]]:
    pos = 0
    out: list[tuple[str, Any]] = []
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            error = SoqlError(f"unexpected token: {text[pos : pos + 10].strip()!r}")
            error.offset = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise error
        if starts is not None:
            starts.append(match.start() + len(match.group(0)) - len(match.group(0).lstrip()))
        pos = match.end()
        kind = match.lastgroup
        value = match.group(kind or "")
        if kind == "string":
            out.append(("string", value[1:-1]))
        elif kind == "temporal":
            try:
                out.append(("value", _temporal(value)))
            except SoqlError as exc:
                exc.offset = (starts or [match.start()])[-1]
                raise
        elif kind == "number":
            out.append(("value", float(value) if "." in value else int(value)))
        elif kind == "op":
            # SOQL Comparison Operators: != and <> are both "not equals"
            out.append(("op", "!=" if value == "<>" else value))
        else:
            upper = value.upper()
            name, _, n = upper.partition(":")
            if upper in ("NULL", "TRUE", "FALSE"):
                out.append(("value", {"NULL": None, "TRUE": True, "FALSE": False}[upper]))
            elif upper in _KEYWORDS:
                out.append(("kw", upper))
            elif upper in _FIXED_LITERALS:
                out.append(("dateliteral", DateLiteral(upper, None)))
            elif name in _N_LITERALS:
                if not n:
                    raise SoqlError(f"the date literal {name} needs a number: {name}:n")
                out.append(("dateliteral", DateLiteral(name, int(n))))
            elif ":" in value:
                raise SoqlError(f"unknown date literal {value!r}")
            else:
                out.append(("ident", value))
    return out


# --- the parsed query -----------------------------------------------------------------------


@attrs.frozen
class DateLiteral:
    """A relative range of days (``TODAY``, ``LAST_N_DAYS:7``, ...)."""

    name: str
    n: int | None

    def bounds(self, today: date) -> tuple[date, date]:
        """[start, end) in days, for the day ``today`` (in the user's zone; the emulator's
        integration user is on UTC). Weeks start on Sunday (the en_US locale); the fiscal
        year is the standard one, starting in January (Setup's default), so fiscal quarters
        and years are the calendar ones."""
        name, n = self.name.replace("_FISCAL", ""), self.n or 0
        day = timedelta(days=1)
        week = today - timedelta(days=(today.weekday() + 1) % 7)
        if name in ("YESTERDAY", "TODAY", "TOMORROW"):
            start = today + {"YESTERDAY": -1, "TODAY": 0, "TOMORROW": 1}[name] * day
            return start, start + day
        if name in ("LAST_WEEK", "THIS_WEEK", "NEXT_WEEK"):
            start = week + {"LAST_WEEK": -7, "THIS_WEEK": 0, "NEXT_WEEK": 7}[name] * day
            return start, start + 7 * day
        # LAST_90_DAYS / LAST_N_DAYS:n include today; NEXT_90_DAYS / NEXT_N_DAYS:n start
        # tomorrow and do not include today
        if name in ("LAST_90_DAYS", "LAST_N_DAYS"):
            return _clamp_days(today, -(90 if name == "LAST_90_DAYS" else n)), today + day
        if name in ("NEXT_90_DAYS", "NEXT_N_DAYS"):
            return today + day, _clamp_days(today, 1 + (90 if name == "NEXT_90_DAYS" else n))
        if name == "N_DAYS_AGO":
            start = _clamp_days(today, -n)
            return start, start + day
        if name in ("NEXT_N_WEEKS", "LAST_N_WEEKS", "N_WEEKS_AGO"):
            if name == "NEXT_N_WEEKS":
                return week + 7 * day, _clamp_days(week, 7 + 7 * n)
            start = _clamp_days(week, -7 * n)
            return start, (week if name == "LAST_N_WEEKS" else start + 7 * day)
        unit = 1
        for word, months in (("MONTH", 1), ("QUARTER", 3), ("YEAR", 12)):
            if word in name:
                unit = months
        month0 = today.year * 12 + today.month - 1
        current = month0 - month0 % unit  # the first month of this month/quarter/year
        if name.startswith("LAST_N_"):
            return _month(current - unit * n), _month(current)
        if name.startswith("NEXT_N_"):
            return _month(current + unit), _month(current + unit * (n + 1))
        if name.endswith("_AGO"):
            return _month(current - unit * n), _month(current - unit * (n - 1))
        offset = {"LAST": -1, "THIS": 0, "NEXT": 1}[name.split("_")[0]]
        return _month(current + unit * offset), _month(current + unit * (offset + 1))


def _clamp_days(base: date, days: int) -> date:
    try:
        return base + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


def _month(index: int) -> date:
    year, month = divmod(index, 12)
    if year < 1:
        return date.min
    if year > 9999:
        return date.max
    return date(year, month + 1, 1)


@attrs.frozen
class Compare:
    """``field op value`` (``value`` a :class:`DateLiteral` for a date literal)."""

    field: str
    op: str
    value: Any


@attrs.frozen
class In:
    """``field [NOT] IN (values)``."""

    field: str
    values: tuple[Any, ...]
    negate: bool


@attrs.frozen
class Like:
    """``field LIKE pattern``: ``pattern`` is a tuple of ``("text", s)``, ``("any", "")``
    (an unescaped ``%``) and ``("one", "")`` (an unescaped ``_``)."""

    field: str
    pattern: tuple[tuple[str, str], ...]


@attrs.frozen
class And:
    """Every part holds."""

    parts: tuple[Any, ...]


@attrs.frozen
class Or:
    """Some part holds."""

    parts: tuple[Any, ...]


@attrs.frozen
class Not:
    """The inner condition does not hold."""

    inner: Any


def like_pattern(value: str) -> tuple[tuple[str, str], ...]:
    """The pattern that matches exactly ``value`` (everything escaped)."""
    return (("text", value),) if value else ()


def _pattern(chars: list[tuple[str, bool]]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    text = ""
    for ch, escaped in chars:
        if not escaped and ch in "%_":
            if text:
                out.append(("text", text))
                text = ""
            out.append(("any" if ch == "%" else "one", ""))
        else:
            text += ch
    if text:
        out.append(("text", text))
    return tuple(out)


@attrs.frozen
class Query:
    """A parsed query: its structure (``where`` is a tree of :class:`Compare`, :class:`In`,
    :class:`Like`, :class:`And`, :class:`Or`, :class:`Not`), run with :meth:`matches`."""

    fields: tuple[str, ...]
    sobject: str
    where: Any
    order: tuple[tuple[str, bool, bool], ...]  # (field, descending, nulls_last)
    limit: int | None
    offset: int
    count_only: bool
    referenced: frozenset[str]
    types: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    def matches(self, record: Mapping[str, Any], now: datetime) -> bool:
        """True if ``record`` satisfies the WHERE clause (``now`` for date literals)."""
        return self.where is None or _holds(self.where, record, now, self.types)


def value_of(record: Mapping[str, Any], field: str) -> Any:
    """A field's value, following ``Relationship.Field`` through nested dicts."""
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _fold(value: Any) -> Any:
    # SOQL Comparison Operators: "String comparisons using the equals operator are
    # case-sensitive for unique case-sensitive fields and case-insensitive for all other
    # fields" (the same for IN and LIKE)
    return value.lower() if isinstance(value, str) else value


def _holds(node: Any, record: Mapping[str, Any], now: datetime, types: Mapping[str, str]) -> bool:
    if isinstance(node, And):
        return all(_holds(p, record, now, types) for p in node.parts)
    if isinstance(node, Or):
        return any(_holds(p, record, now, types) for p in node.parts)
    if isinstance(node, Not):
        return not _holds(node.inner, record, now, types)
    value = value_of(record, node.field)
    if isinstance(node, In):
        inside = _fold(value) in {_fold(v) for v in node.values}
        return inside != node.negate
    if isinstance(node, Like):
        if value is None:
            return False
        regex = "".join(
            re.escape(text) if kind == "text" else ".*" if kind == "any" else "."
            for kind, text in node.pattern
        )
        return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None
    op, right = node.op, node.value
    if isinstance(right, DateLiteral):
        if value is None:
            return bool(op == "!=")
        lo_day, hi_day = right.bounds(now.astimezone(UTC).date())
        if isinstance(value, datetime):
            lo: Any = datetime.combine(lo_day, datetime.min.time(), UTC)
            hi: Any = datetime.combine(hi_day, datetime.min.time(), UTC)
        else:
            lo, hi = lo_day, hi_day
        # a date literal is a range: = inside it, < before it, > after it
        return bool(
            {
                "=": lo <= value < hi,
                "!=": not lo <= value < hi,
                "<": value < lo,
                "<=": value < hi,
                ">": value >= hi,
                ">=": value >= lo,
            }[op]
        )
    if op == "=":
        return bool(_fold(value) == _fold(right))
    if op == "!=":
        return bool(_fold(value) != _fold(right))
    if value is None or right is None:
        return False
    left = _fold(value)
    right = _fold(right)
    return bool(
        {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    )


# --- the parser -----------------------------------------------------------------------------

_TEXT = frozenset({"id", "reference", "string", "picklist", "textarea", "email", "phone", "url"})
_NUMBER = frozenset({"double", "int", "currency", "percent"})


def _default_schema() -> tuple[Mapping[str, Mapping[str, str]], Mapping[str, tuple[str, str]]]:
    return schema(), REFERENCES


class _Parser:
    def __init__(
        self,
        text: str,
        schema: Mapping[str, Mapping[str, str]],
        references: Mapping[str, tuple[str, str]],
    ) -> None:
        self.starts: list[int] = []
        self.tokens = _tokens(text, self.starts)
        self.end = len(text.rstrip())
        self.i = 0
        self.at = 0  # the token most recently looked at (for error positions)
        self.schema = schema
        self.references = references
        self.referenced: set[str] = set()
        self.types: dict[str, str] = {}
        self.sobject = ""

    def peek(self) -> tuple[str, Any] | None:
        self.at = self.i
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def offset(self) -> int:
        """Where the token most recently looked at starts (the end of the query after it)."""
        return self.starts[self.at] if self.at < len(self.starts) else self.end

    def take(self, kind: str | None = None, value: Any = None) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise SoqlError(f"unexpected token: <EOF> (expected {value or kind or 'more'})")
        if (kind is not None and token[0] != kind) or (value is not None and token[1] != value):
            raise SoqlError(f"unexpected token: {token[1]!r}; expected {value or kind}")
        self.i += 1
        return token

    def accept(self, kind: str, value: Any = None) -> bool:
        token = self.peek()
        if token is not None and token[0] == kind and (value is None or token[1] == value):
            self.i += 1
            return True
        return False

    def resolve(self, written: str) -> str:
        """A field name (or ``Relationship.Field``) under its API name, with its type.

        SOQL and SOSL Reference, SOQL SELECT Syntax: field and object names are not case
        sensitive; Relationship Queries: a parent's field is named through the
        relationship name (``Owner.Name`` for ``OwnerId``)."""
        sobject, parts, out = self.sobject, written.split("."), []
        for k, part in enumerate(parts):
            fields = {f.lower(): f for f in self.schema[sobject]}
            if k == len(parts) - 1:
                name = fields.get(part.lower())
                if name is None:
                    raise SoqlError(
                        f"No such column '{part}' on entity '{sobject}'. If you are attempting "
                        "to use a custom field, be sure to append the '__c' after the custom "
                        "field name.",
                        "INVALID_FIELD",
                    )
                out.append(name)
                api = ".".join(out)
                self.types[api] = self.schema[sobject][name]
                return api
            relationship = next(
                (
                    (rel, target)
                    for ref, (rel, target) in self.references.items()
                    if rel.lower() == part.lower() and ref in self.schema[sobject]
                ),
                None,
            )
            if relationship is None:
                raise SoqlError(
                    f"Didn't understand relationship '{part}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' "
                    "after the custom relationship name.",
                    "INVALID_FIELD",
                )
            out.append(relationship[0])
            sobject = relationship[1]
        raise AssertionError("unreachable")

    def field(self) -> str:
        token = self.take()
        if token[0] != "ident":
            raise SoqlError(f"unexpected token: {token[1]!r}; expected a field name")
        name = self.resolve(str(token[1]))
        self.referenced.add(name)
        return name

    def query(self) -> Query:
        self.take("kw", "SELECT")
        # the object comes after the fields: find FROM first, so fields resolve against it
        try:
            at = next(k for k, t in enumerate(self.tokens) if t == ("kw", "FROM") and k > self.i)
        except StopIteration:
            raise SoqlError("unexpected token: <EOF> (expected FROM)") from None
        if at + 1 >= len(self.tokens) or self.tokens[at + 1][0] != "ident":
            self.at = at + 1
            raise SoqlError("unexpected token after FROM; expected an object name")
        written = str(self.tokens[at + 1][1])
        sobject = {o.lower(): o for o in self.schema}.get(written.lower())
        if sobject is None:
            self.at = at + 1
            raise SoqlError(
                f"sObject type '{written}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name.",
                "INVALID_TYPE",
            )
        self.sobject = sobject
        count_only = False
        fields: list[str] = []
        if self.accept("kw", "COUNT"):
            self.take("op", "(")
            self.take("op", ")")
            count_only = True
        else:
            fields.append(self.field())
            field_at = [self.at]
            while self.accept("op", ","):
                fields.append(self.field())
                field_at.append(self.at)
            for k, name in enumerate(fields):
                if name in fields[:k]:
                    # a field may be selected once (SOQL SELECT Syntax; Salesforce answers
                    # "duplicate field selected")
                    self.at = field_at[k]
                    raise SoqlError(f"duplicate field selected: {name}")
        self.take("kw", "FROM")
        self.take("ident")
        where = self.condition() if self.accept("kw", "WHERE") else None
        order: list[tuple[str, bool, bool]] = []
        if self.accept("kw", "ORDER"):
            self.take("kw", "BY")
            while True:
                name = self.field()
                descending = self.accept("kw", "DESC")
                if not descending:
                    self.accept("kw", "ASC")
                # ORDER BY: nulls first by default ascending, last descending
                nulls_last = descending
                if self.accept("kw", "NULLS"):
                    nulls_last = self.accept("kw", "LAST")
                    if not nulls_last:
                        self.take("kw", "FIRST")
                order.append((name, descending, nulls_last))
                if not self.accept("op", ","):
                    break
        limit = self.count("LIMIT") if self.accept("kw", "LIMIT") else None
        offset = self.count("OFFSET") if self.accept("kw", "OFFSET") else 0
        if offset > MAX_OFFSET:
            raise SoqlError(
                f"Maximum SOQL offset allowed is {MAX_OFFSET}", "NUMBER_OUTSIDE_VALID_RANGE"
            )
        token = self.peek()
        if token is not None:
            if token[0] == "kw":
                raise SoqlError(f"{token[1]} is not supported by the emulator's SOQL subset")
            raise SoqlError(f"unexpected token: {token[1]!r}")
        return Query(
            tuple(fields),
            sobject,
            where,
            tuple(order),
            limit,
            offset,
            count_only,
            frozenset(self.referenced),
            dict(self.types),
        )

    def count(self, clause: str) -> int:
        # SOQL LIMIT and OFFSET take a non-negative integer
        token = self.take()
        if token[0] != "value" or type(token[1]) is not int or token[1] < 0:
            raise SoqlError(f"{clause} takes a non-negative integer, not {token[1]!r}")
        return int(token[1])

    def condition(self) -> Any:
        parts = [self.conjunction()]
        while self.accept("kw", "OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conjunction(self) -> Any:
        parts = [self.negation()]
        while self.accept("kw", "AND"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def negation(self) -> Any:
        if self.accept("kw", "NOT"):
            return Not(self.negation())
        if self.accept("op", "("):
            inner = self.condition()
            self.take("op", ")")
            return inner
        return self.comparison()

    def value(self, name: str, like: bool = False) -> Any:
        token = self.take()
        kind = self.types[name]
        if token[0] == "string":
            chars = _decode(str(token[1]), like)
            if like:
                return _pattern(chars)
            value: Any = "".join(ch for ch, _ in chars)
        elif token[0] in ("value", "dateliteral"):
            value = token[1]
        else:
            raise SoqlError(f"unexpected token: {token[1]!r}; expected a value")
        self.check_type(name, kind, value, quoted=token[0] == "string")
        if kind in ("id", "reference") and isinstance(value, str):
            # an Id filter takes the 15- or the 18-character form; anything else is refused
            # ("invalid ID field"), as Salesforce does
            full = id18(value)
            if full is None:
                raise SoqlError(f"invalid ID field: {value}", "INVALID_QUERY_FILTER_OPERATOR")
            value = full
        return value

    def check_type(self, name: str, kind: str, value: Any, quoted: bool) -> None:
        """SOQL and SOSL Reference, Date Formats: "If you specify a dateTime format in a
        query, you can filter only on dateTime fields. Similarly, if you specify a date
        format value, you can filter only on date fields"; fieldExpression Syntax: strings
        are quoted, dates, numbers and booleans are not. Salesforce answers INVALID_FIELD."""
        if value is None:
            return
        if kind in _TEXT:
            ok, wanted = isinstance(value, str), "string and should be enclosed in quotes"
        elif kind == "boolean":
            ok, wanted = isinstance(value, bool), "boolean and should not be enclosed in quotes"
        elif kind in _NUMBER:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            wanted = "double and should not be enclosed in quotes"
        elif kind == "date":
            ok = isinstance(value, DateLiteral) or (
                isinstance(value, date) and not isinstance(value, datetime)
            )
            wanted = "date and should not be enclosed in quotes"
        elif kind == "datetime":
            ok = isinstance(value, DateLiteral | datetime)
            wanted = "dateTime and should not be enclosed in quotes"
        else:
            ok, wanted = True, kind
        if not ok:
            raise SoqlError(
                f"value of filter criterion for field '{name}' must be of type {wanted}",
                "INVALID_FIELD",
            )

    def comparison(self) -> Any:
        name = self.field()
        negate = self.accept("kw", "NOT")
        if self.accept("kw", "IN"):
            self.take("op", "(")
            values = [self.value(name)]
            while self.accept("op", ","):
                values.append(self.value(name))
            self.take("op", ")")
            if any(isinstance(v, DateLiteral) for v in values):
                raise SoqlError("date literals cannot be used in an IN list")
            return In(name, tuple(values), negate)
        if negate:
            raise SoqlError("NOT here must be followed by IN")
        if self.accept("kw", "LIKE"):
            # SOQL Comparison Operators: LIKE is supported for string fields only
            if self.types[name] not in _TEXT or self.types[name] in ("id", "reference"):
                raise SoqlError(
                    f"invalid operator on {self.types[name]} field: LIKE on {name}",
                    "INVALID_QUERY_FILTER_OPERATOR",
                )
            token = self.peek()
            if token is None or token[0] != "string":
                raise SoqlError("LIKE takes a quoted string")
            return Like(name, self.value(name, like=True))
        op = str(self.take("op")[1])
        if op not in ("=", "!=", "<", "<=", ">", ">="):
            raise SoqlError(f"unexpected token: {op!r}; expected an operator")
        return Compare(name, op, self.value(name))


def parse(
    text: str,
    schema: Mapping[str, Mapping[str, str]] | None = None,
    references: Mapping[str, tuple[str, str]] | None = None,
) -> Query:
    """Parse a SOQL query against ``schema`` (object -> field -> SOAP type; the emulated
    org's by default) and ``references`` (reference field -> (relationship, object));
    raises :class:`SoqlError` with Salesforce's errorCode."""
    if schema is None or references is None:
        default_schema, default_references = _default_schema()
        schema = default_schema if schema is None else schema
        references = default_references if references is None else references
    parser = None
    try:
        parser = _Parser(text, schema, references)
        return parser.query()
    except SoqlError as exc:
        if exc.offset is None and parser is not None:
            exc.offset = parser.offset()
        raise
