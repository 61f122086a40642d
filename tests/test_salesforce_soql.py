"""The emulator's SOQL parser against Salesforce's SOQL and SOSL Reference: which queries
from the documents it accepts and which it refuses (and why), the date literals' ranges,
and hostile values through simple_salesforce's ``format_soql``."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from simple_salesforce.format import format_soql

from spe_adapters.salesforce.emulator.soql import (
    And,
    Compare,
    DateLiteral,
    In,
    Like,
    SoqlError,
    like_pattern,
    parse,
)

NOW = datetime(2026, 1, 7, 15, 30, tzinfo=UTC)  # a Wednesday

# (query, why it is valid) — examples from the SOQL and SOSL Reference, on the emulated
# org's objects and fields
ACCEPTED = [
    ("SELECT Id FROM Account WHERE CreatedDate > 2005-10-08T01:02:03Z", "Date Formats: Z"),
    ("SELECT Id FROM Account WHERE CreatedDate > 1999-01-01T23:01:01+01:00", "+hh:mm"),
    ("SELECT Id FROM Account WHERE CreatedDate > 1999-01-01T23:01:01-08:00", "-hh:mm"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = 1999-01-01", "a date on a date field"),
    ("SELECT Id FROM Account WHERE CreatedDate = YESTERDAY", "Date Literals"),
    ("SELECT Id FROM Account WHERE CreatedDate > TODAY", "Date Literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = TOMORROW", "a literal on a date field"),
    ("SELECT Id FROM Account WHERE CreatedDate > LAST_WEEK", "Date Literals"),
    ("SELECT Id FROM Account WHERE CreatedDate < THIS_WEEK", "Date Literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = NEXT_WEEK", "Date Literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate > LAST_MONTH", "Date Literals"),
    ("SELECT Id FROM Account WHERE CreatedDate < THIS_MONTH", "Date Literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = NEXT_MONTH", "Date Literals"),
    ("SELECT Id FROM Account WHERE CreatedDate = LAST_90_DAYS", "Date Literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate > NEXT_90_DAYS", "Date Literals"),
    ("SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:365", "Date Literals, :n"),
    ("SELECT Id FROM Opportunity WHERE CloseDate > NEXT_N_DAYS:15", "Date Literals, :n"),
    ("SELECT Id FROM Account WHERE CreatedDate = N_DAYS_AGO:3", "Date Literals, :n"),
    ("SELECT Id FROM Opportunity WHERE CloseDate > NEXT_N_WEEKS:4", "Date Literals, :n"),
    ("SELECT Id FROM Account WHERE CreatedDate = LAST_N_WEEKS:52", "Date Literals, :n"),
    ("SELECT Id FROM Account WHERE CreatedDate = N_WEEKS_AGO:3", "Date Literals, :n"),
    ("SELECT Id FROM Opportunity WHERE CloseDate > NEXT_N_MONTHS:2", "Date Literals, :n"),
    ("SELECT Id FROM Account WHERE CreatedDate = LAST_N_MONTHS:12", "Date Literals, :n"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = N_MONTHS_AGO:6", "Date Literals, :n"),
    ("SELECT Id FROM Account WHERE CreatedDate = THIS_QUARTER", "Date Literals"),
    ("SELECT Id FROM Account WHERE CreatedDate > LAST_QUARTER", "Date Literals"),
    ("SELECT Id FROM Account WHERE CreatedDate < NEXT_QUARTER", "Date Literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate < NEXT_N_QUARTERS:2", "Date Literals, :n"),
    ("SELECT Id FROM Account WHERE CreatedDate > LAST_N_QUARTERS:2", "Date Literals, :n"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = N_QUARTERS_AGO:3", "Date Literals, :n"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = THIS_YEAR", "Date Literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate > LAST_YEAR", "Date Literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate < NEXT_YEAR", "Date Literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate < NEXT_N_YEARS:5", "Date Literals, :n"),
    ("SELECT Id FROM Opportunity WHERE CloseDate > LAST_N_YEARS:5", "Date Literals, :n"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = N_YEARS_AGO:2", "Date Literals, :n"),
    ("SELECT Id FROM Account WHERE CreatedDate = THIS_FISCAL_QUARTER", "fiscal literals"),
    ("SELECT Id FROM Account WHERE CreatedDate > LAST_FISCAL_QUARTER", "fiscal literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = THIS_FISCAL_YEAR", "fiscal literals"),
    ("SELECT Id FROM Opportunity WHERE CloseDate < NEXT_N_FISCAL_YEARS:3", "fiscal literals"),
    ("SELECT Id FROM Account WHERE Name LIKE 'Ter%'", "Quoted String Escape Sequences"),
    ("SELECT Id FROM Account WHERE Name LIKE 'Ter\\%'", "\\% in LIKE: a percent sign"),
    ("SELECT Id FROM Account WHERE Name LIKE 'Ter\\%%'", "\\% then a wildcard"),
    ("SELECT Id FROM Account WHERE Name = 'Bob\\'s BBQ'", "Reserved Characters"),
    ("SELECT Id FROM Account WHERE Name = 'caf\\u00e9 \\N \\T'", "\\uXXXX, upper-case escapes"),
    ("select id from account where name = 'x'", "keywords and names are case-insensitive"),
    ("SELECT lastname FROM LEAD WHERE company != null ORDER BY lastname", "case-insensitive"),
    ("SELECT Name FROM Account ORDER BY Name LIMIT 100 OFFSET 20", "OFFSET example"),
    ("SELECT Name FROM Account ORDER BY Name LIMIT 10 OFFSET 2000", "the maximum OFFSET"),
    ("SELECT Name FROM Account ORDER BY Name DESC NULLS LAST", "ORDER BY ... NULLS LAST"),
    ("SELECT COUNT() FROM Account", "COUNT()"),
    ("SELECT Id FROM Lead WHERE Rating IN ('Hot', 'Warm')", "IN"),
    ("SELECT Id FROM Lead WHERE Rating NOT IN ('Cold')", "NOT IN"),
    ("SELECT Id FROM Lead WHERE Rating <> 'Cold'", "<> is != (Comparison Operators)"),
    ("SELECT Id FROM Lead WHERE IsDeleted = false AND (Rating = 'Hot' OR NOT Rating = null)", ""),
    ("SELECT Id, Owner.Name FROM Lead WHERE Owner.IsActive = true", "parent relationship"),
    ("SELECT Id FROM User WHERE Latitude > -12.5", "a number on a double field"),
    ("SELECT Id FROM Lead WHERE Id = '00Q5g00000AbCdE'", "a 15-character Id"),
    ("SELECT Id FROM Lead WHERE OwnerId IN ('005000000000001AAA')", "an 18-character Id"),
]

# (query, errorCode, why Salesforce refuses it)
REJECTED = [
    (
        "SELECT Id FROM Account WHERE CreatedDate > 2005-10-08T01:02:03.000Z",
        "MALFORMED_QUERY",
        "fractional seconds are not a documented literal form (Date Formats)",
    ),
    (
        "SELECT Id FROM Account WHERE CreatedDate > 2005-10-08T01:02:03+0000",
        "MALFORMED_QUERY",
        "+hhmm is the response form, not a literal form; literals use +hh:mm",
    ),
    (
        "SELECT Id FROM Account WHERE CreatedDate > 2005-10-08T01:02:03",
        "MALFORMED_QUERY",
        "a dateTime literal needs Z or an offset",
    ),
    (
        "SELECT Id FROM Account WHERE CreatedDate > '2005-10-08T01:02:03Z'",
        "INVALID_FIELD",
        "dates are not enclosed in quotes (Date Formats)",
    ),
    (
        "SELECT Id FROM Account WHERE CreatedDate > 2005-10-08",
        "INVALID_FIELD",
        "a date value filters only date fields (Date Formats)",
    ),
    (
        "SELECT Id FROM Opportunity WHERE CloseDate = 2005-10-08T01:02:03Z",
        "INVALID_FIELD",
        "a dateTime value filters only dateTime fields (Date Formats)",
    ),
    (
        "SELECT Id FROM Opportunity WHERE CloseDate = 2005-02-30",
        "MALFORMED_QUERY",
        "not a calendar date",
    ),
    ("SELECT Id, Id FROM Account", "MALFORMED_QUERY", "duplicate field selected"),
    ("SELECT Id, id FROM Account", "MALFORMED_QUERY", "duplicate field, names ignore case"),
    (
        "SELECT Name FROM Account ORDER BY Name LIMIT 10 OFFSET 2001",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "the maximum offset is 2,000 rows (OFFSET)",
    ),
    ("SELECT Name FROM Account LIMIT -1", "MALFORMED_QUERY", "LIMIT is a non-negative integer"),
    ("SELECT Name FROM Account LIMIT 1.5", "MALFORMED_QUERY", "LIMIT is an integer"),
    ("SELECT Name FROM Account OFFSET 5 LIMIT 10", "MALFORMED_QUERY", "LIMIT comes before OFFSET"),
    (
        "SELECT Id FROM Account WHERE Name = 'Ter\\%'",
        "MALFORMED_QUERY",
        "\\% is valid in a LIKE expression only (Quoted String Escape Sequences)",
    ),
    (
        "SELECT Id FROM Account WHERE Name = 'a\\qb'",
        "MALFORMED_QUERY",
        "a backslash in any other context is an error",
    ),
    ("SELECT Id FROM Account WHERE Name = 'Bob's BBQ'", "MALFORMED_QUERY", "unescaped quote"),
    ("SELECT Id FROM Account WHERE Name = 'open", "MALFORMED_QUERY", "unterminated string"),
    (
        "SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS",
        "MALFORMED_QUERY",
        "LAST_N_DAYS takes :n",
    ),
    (
        "SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYZ:3",
        "MALFORMED_QUERY",
        "no such date literal",
    ),
    (
        "SELECT Id FROM Account WHERE Name = 5",
        "INVALID_FIELD",
        "a string field's value is quoted (fieldExpression Syntax)",
    ),
    (
        "SELECT Id FROM Lead WHERE IsDeleted = 'false'",
        "INVALID_FIELD",
        "booleans are not quoted",
    ),
    (
        "SELECT Id FROM Lead WHERE CreatedDate LIKE '2026%'",
        "INVALID_QUERY_FILTER_OPERATOR",
        "LIKE is for string fields only (Comparison Operators)",
    ),
    (
        "SELECT Id FROM Lead WHERE Id = 'not-an-id'",
        "INVALID_QUERY_FILTER_OPERATOR",
        "an Id filter takes a 15- or 18-character Id (invalid ID field)",
    ),
    ("SELECT Nope__c FROM Account", "INVALID_FIELD", "no such field"),
    ("SELECT Id FROM Nope__c", "INVALID_TYPE", "no such object"),
    ("SELECT Id, Boss.Name FROM Lead", "INVALID_FIELD", "no such relationship"),
    ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "a condition is missing"),
    ("SELECT Id Account", "MALFORMED_QUERY", "FROM is missing"),
]


@pytest.mark.parametrize(("text", "why"), ACCEPTED, ids=[q for q, _ in ACCEPTED])
def test_documented_queries_are_accepted(text: str, why: str) -> None:
    parse(text).matches({}, NOW)


@pytest.mark.parametrize(("text", "code", "why"), REJECTED, ids=[q for q, _, _ in REJECTED])
def test_documented_errors_are_refused_with_salesforces_code(
    text: str, code: str, why: str
) -> None:
    with pytest.raises(SoqlError) as info:
        parse(text)
    assert info.value.code == code, (why, str(info.value))


def test_names_resolve_to_their_api_names() -> None:
    query = parse("select lastname, owner.name from lead where spe_key__c = 'k'")
    assert (query.sobject, query.fields) == ("Lead", ("LastName", "Owner.Name"))
    assert query.where == Compare("SPE_Key__c", "=", "k")


@pytest.mark.parametrize(
    ("literal", "start", "end"),
    [
        ("YESTERDAY", date(2026, 1, 6), date(2026, 1, 7)),
        ("TODAY", date(2026, 1, 7), date(2026, 1, 8)),
        ("TOMORROW", date(2026, 1, 8), date(2026, 1, 9)),
        ("THIS_WEEK", date(2026, 1, 4), date(2026, 1, 11)),  # weeks start on Sunday (en_US)
        ("LAST_WEEK", date(2025, 12, 28), date(2026, 1, 4)),
        ("NEXT_WEEK", date(2026, 1, 11), date(2026, 1, 18)),
        ("THIS_MONTH", date(2026, 1, 1), date(2026, 2, 1)),
        ("LAST_MONTH", date(2025, 12, 1), date(2026, 1, 1)),
        ("LAST_90_DAYS", date(2025, 10, 9), date(2026, 1, 8)),  # includes today
        ("NEXT_90_DAYS", date(2026, 1, 8), date(2026, 4, 8)),  # starts tomorrow
        ("LAST_N_DAYS:7", date(2025, 12, 31), date(2026, 1, 8)),
        ("NEXT_N_DAYS:7", date(2026, 1, 8), date(2026, 1, 15)),
        ("N_DAYS_AGO:2", date(2026, 1, 5), date(2026, 1, 6)),
        ("LAST_N_WEEKS:2", date(2025, 12, 21), date(2026, 1, 4)),
        ("NEXT_N_MONTHS:2", date(2026, 2, 1), date(2026, 4, 1)),
        ("N_MONTHS_AGO:1", date(2025, 12, 1), date(2026, 1, 1)),
        ("THIS_QUARTER", date(2026, 1, 1), date(2026, 4, 1)),
        ("LAST_QUARTER", date(2025, 10, 1), date(2026, 1, 1)),
        ("LAST_N_QUARTERS:2", date(2025, 7, 1), date(2026, 1, 1)),
        ("THIS_YEAR", date(2026, 1, 1), date(2027, 1, 1)),
        ("NEXT_N_YEARS:2", date(2027, 1, 1), date(2029, 1, 1)),
        ("THIS_FISCAL_QUARTER", date(2026, 1, 1), date(2026, 4, 1)),
    ],
)
def test_date_literal_ranges(literal: str, start: date, end: date) -> None:
    name, _, n = literal.partition(":")
    assert DateLiteral(name, int(n) if n else None).bounds(NOW.date()) == (start, end)
    query = parse(f"SELECT Id FROM Opportunity WHERE CloseDate = {literal}")
    assert query.matches({"CloseDate": start}, NOW)
    assert not query.matches({"CloseDate": end}, NOW)
    on_datetime = parse(f"SELECT Id FROM Lead WHERE CreatedDate < {literal}")
    before = datetime.combine(start, datetime.min.time(), UTC).replace(microsecond=1)
    assert not on_datetime.matches({"CreatedDate": before}, NOW)


def test_an_id_filter_takes_either_form() -> None:
    full = "00Q5g00000AbCdEEAV"
    for written in (full, full[:15], full.lower()):
        query = parse(f"SELECT Id FROM Lead WHERE Id = '{written}'")
        assert query.where == Compare("Id", "=", full)
        assert query.matches({"Id": full}, NOW)
    assert not parse("SELECT Id FROM Lead WHERE Id = '00Q5g00000abcdE'").matches({"Id": full}, NOW)


def test_like_escapes_match_literally() -> None:
    query = parse("SELECT Id FROM Account WHERE Name LIKE 'a\\\\\\%b\\_%'")
    assert query.where == Like("Name", (("text", "a\\%b_"), ("any", "")))
    assert query.matches({"Name": "A\\%B_ and more"}, NOW)  # LIKE ignores case
    assert not query.matches({"Name": "a\\xb_"}, NOW)


HOSTILE = st.one_of(
    st.text(),
    st.text(alphabet="\\'\"%_\n\r\t\b\f aZ", max_size=12),
    st.sampled_from(["", "\\", "\\%", "%", "_", "'", "\\'", "\\\\%", "' OR Name != '", "\x00"]),
)


@settings(max_examples=3000, deadline=None)
@given(value=HOSTILE, other=HOSTILE)
@example(value="\\%", other="")
@example(value="a\\_b%", other="'")
def test_hostile_values_through_format_soql_never_change_the_structure(
    value: str, other: str
) -> None:
    """=, !=, IN and LIKE (escaped with format_soql's ``like`` spec, the helper the adapter
    uses): the parsed query is the one written, and every value round-trips."""
    base = "SELECT Id FROM Lead WHERE "
    tail = Compare("LastName", "=", other)
    record = {"Company": value, "LastName": other}

    eq = parse(format_soql(base + "Company = {} AND LastName = {}", value, other))
    assert eq.where == And((Compare("Company", "=", value), tail))
    assert eq.matches(record, NOW)
    assert not eq.matches({**record, "Company": value + "x"}, NOW)

    ne = parse(format_soql(base + "Company != {} AND LastName = {}", value, other))
    assert ne.where == And((Compare("Company", "!=", value), tail))
    assert not ne.matches(record, NOW)
    assert ne.matches({**record, "Company": value + "x"}, NOW)

    inn = parse(format_soql(base + "Company IN {} AND LastName = {}", [value, other], other))
    assert inn.where == And((In("Company", (value, other), False), tail))
    assert inn.matches(record, NOW) and inn.matches({**record, "Company": other}, NOW)

    exact = parse(format_soql(base + "Company LIKE '{:like}' AND LastName = {}", value, other))
    assert exact.where == And((Like("Company", like_pattern(value)), tail))
    assert exact.matches(record, NOW)
    assert not exact.matches({**record, "Company": value + "x"}, NOW)

    prefix = parse(format_soql(base + "Company LIKE '{:like}%' AND LastName = {}", value, other))
    assert prefix.where == And((Like("Company", (*like_pattern(value), ("any", ""))), tail))
    assert prefix.matches({**record, "Company": value + other + "x"}, NOW)
    assert prefix.referenced == {"Id", "Company", "LastName"}


def test_errors_point_at_the_spot_as_salesforce_words_them() -> None:
    text = "SELECT Id, LastName,\nid FROM Lead"
    with pytest.raises(SoqlError) as info:
        parse(text)
    assert info.value.message_for(text) == (
        "\nid FROM Lead\n^\nERROR at Row:2:Column:1\nduplicate field selected: Id"
    )
    text = "SELECT Id FROM Lead WHERE CreatedDate > 2020-01-01T00:00:00.000Z"
    with pytest.raises(SoqlError) as info:
        parse(text)
    assert "ERROR at Row:1:Column:41\n" in info.value.message_for(text)
