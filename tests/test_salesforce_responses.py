"""The Salesforce emulator's replies, driven with simple-salesforce over HTTPS and compared
with the shapes of the REST API Developer Guide and the SOAP API Field Types."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import format_soql

from spe_adapters.salesforce.emulator import EmulatorServer
from spe_core.testing import FakeClock

NOW = datetime(2026, 1, 7, 15, 30, tzinfo=UTC)
SF_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000")


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(clock=FakeClock(NOW).now) as s:
        yield s


def client(server: EmulatorServer, version: str = "59.0") -> Salesforce:
    http = requests.Session()
    http.trust_env = False
    http.verify = server.ca_path
    return Salesforce(
        instance_url=server.url,
        session_id=server.org.new_session(),
        session=http,
        version=version,
    )


@pytest.fixture
def sf(server: EmulatorServer) -> Salesforce:
    server.org.reset()
    return client(server)


def lead(sf: Salesforce, **fields: Any) -> str:
    result = sf.Lead.create({"LastName": "Ruiz", "Company": "Acme", **fields})
    return str(result["id"])


def errors(exc: Any) -> list[dict[str, Any]]:
    content = exc.value.content
    assert isinstance(content, list), content
    return content


def test_describe_is_shaped_as_documented(sf: Salesforce) -> None:
    described = sf.Lead.describe()
    assert (described["name"], described["label"], described["keyPrefix"]) == (
        "Lead",
        "Lead",
        "00Q",
    )
    assert described["urls"]["describe"] == "/services/data/v59.0/sobjects/Lead/describe"
    assert described["createable"] and described["updateable"] and not described["custom"]
    fields = {f["name"]: f for f in described["fields"]}
    for field in fields.values():
        for key in ("name", "label", "type", "length", "defaultValue", "updateable"):
            assert key in field, (field["name"], key)
        assert {"externalId", "nillable", "createable", "custom"} <= set(field)
    assert fields["IsDeleted"]["type"] == "boolean"  # SOAP API Field Types
    assert fields["SystemModstamp"]["type"] == "datetime"
    assert not fields["SystemModstamp"]["updateable"]
    assert fields["SPE_Key__c"]["externalId"] and fields["SPE_Key__c"]["custom"]
    assert fields["LastName"]["length"] == 80 and not fields["LastName"]["nillable"]
    assert fields["Company"]["length"] == 255 and fields["SPE_Key__c"]["length"] == 80
    assert fields["OwnerId"]["referenceTo"] == ["User"]
    account = client_for_version(sf, "57.0").Account.describe()
    assert account["urls"]["sobject"] == "/services/data/v57.0/sobjects/Account"
    children = {(c["childSObject"], c["field"]) for c in account["childRelationships"]}
    assert ("Opportunity", "AccountId") in children


def client_for_version(sf: Salesforce, version: str) -> Salesforce:
    return Salesforce(
        instance_url=f"https://{sf.sf_instance}",
        session_id=sf.session_id,
        session=sf.session,
        version=version,
    )


def test_a_record_get_returns_every_field_and_takes_either_id_form(sf: Salesforce) -> None:
    record_id = lead(sf)
    assert len(record_id) == 18
    got = sf.Lead.get(record_id)
    assert got["Rating"] is None and got["SPE_Released_At__c"] is None  # unset: null
    assert got["IsDeleted"] is False
    assert SF_DATETIME.fullmatch(got["CreatedDate"]), got["CreatedDate"]
    assert got["attributes"] == {
        "type": "Lead",
        "url": f"/services/data/v59.0/sobjects/Lead/{record_id}",
    }
    assert sf.Lead.get(record_id[:15])["Id"] == record_id
    assert sf.Lead.get(record_id.lower())["Id"] == record_id  # the suffix restores the case
    sf.Lead.update(record_id[:15], {"Rating": "Hot"})
    assert sf.Lead.get(record_id)["Rating"] == "Hot"
    only = sf.Lead.get(record_id, params={"fields": "lastname,Company"})
    assert set(only) == {"attributes", "LastName", "Company"}


def _checksum(id15: str) -> str:
    alphabet = string.ascii_uppercase + "012345"
    return "".join(
        alphabet[sum(1 << i for i, c in enumerate(id15[k : k + 5]) if c.isupper())]
        for k in (0, 5, 10)
    )


def test_ids_end_in_the_case_checksum(sf: Salesforce, server: EmulatorServer) -> None:
    ids = [server.org.new_id("Lead") for _ in range(500)]
    assert len(set(ids)) == 500
    assert all(i[15:] == _checksum(i[:15]) for i in ids)
    assert len({i[15:] for i in ids}) > 20  # not "AAA" for all of them


def test_required_fields_and_bad_ids(sf: Salesforce, server: EmulatorServer) -> None:
    record_id = lead(sf)
    for field, value in (("LastName", None), ("Company", "")):
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.Lead.update(record_id, {field: value})
        assert errors(info)[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
        assert errors(info)[0]["fields"] == [field]
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.Lead.update("00Q5g00000ZZZZZ", {"Rating": "Hot"})
    assert errors(missing)[0]["errorCode"] == "NOT_FOUND"
    user = server.org.create("User", {"Username": "u@x.example"})
    reply = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Lead"}, "Id": user, "Rating": "Hot"}]},
    )
    assert reply == [
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "MALFORMED_ID",
                    "message": f"Lead ID: id value of incorrect type: {user}",
                    "fields": ["Id"],
                }
            ],
        }
    ]


def test_every_4xx_has_a_json_body(sf: Salesforce, server: EmulatorServer) -> None:
    http = sf.session
    headers = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    api = f"{server.url}/services/data/v59.0"
    for method, path, body in [
        ("POST", "/sobjects/Lead/", "{not json"),
        ("PATCH", "/composite/sobjects", "[1, 2"),
        ("GET", "/sobjects/Nope/describe", None),
        ("GET", "/no/such/resource", None),
        ("PUT", "/sobjects/Lead/00Q5g00000ZZZZZ", "{}"),
        ("GET", "/query", None),
    ]:
        reply = http.request(method, api + path, data=body, headers=headers)
        assert 400 <= reply.status_code < 500, (path, reply.status_code)
        assert reply.headers["Content-Type"].startswith("application/json"), path
        assert {"message", "errorCode"} <= set(reply.json()[0]), path
    broken = http.post(f"{api}/sobjects/Lead/", data="{not json", headers=headers)
    assert (broken.status_code, broken.json()[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")


def test_urls_echo_the_version_called(sf: Salesforce, server: EmulatorServer) -> None:
    for i in range(250):
        server.org.create("Lead", {"LastName": f"L{i}", "Company": "Acme"})
    old = client_for_version(sf, "57.0")
    page = old.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=200"})
    assert page["nextRecordsUrl"].startswith("/services/data/v57.0/query/")
    assert page["records"][0]["attributes"]["url"].startswith("/services/data/v57.0/sobjects/")


def test_collection_results_are_shaped_as_documented(sf: Salesforce) -> None:
    body = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Lead"}, "LastName": "Ok", "Company": "Acme"},
            {"attributes": {"type": "Lead"}, "LastName": "No company"},
        ],
    }
    rolled = sf.restful("composite/sobjects", method="POST", json=body)
    assert rolled[0] == {
        "success": False,
        "errors": [
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
        ],
    }  # no Id: the record was never created
    assert rolled[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert "id" not in rolled[1]
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    record_id = lead(sf)
    update = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Lead"}, "Id": record_id, "Rating": "Hot"},
            {"attributes": {"type": "Lead"}, "Id": "00Q5g00000ZZZZZ", "Rating": "Hot"},
        ],
    }
    rolled = sf.restful("composite/sobjects", method="PATCH", json=update)
    assert rolled[0]["id"] == record_id  # the record exists: its Id is reported
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sf.Lead.get(record_id)["Rating"] is None
    fine = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"records": [{"attributes": {"type": "Lead"}, "LastName": "A", "Company": "B"}]},
    )
    assert set(fine[0]) == {"id", "success", "errors"} and fine[0]["success"]


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ({"Colour__c": "red"}, "INVALID_FIELD"),
        ({"SPE_Released_At__c": "2026-01-05T08:00:00.123456+00:00"}, "JSON_PARSER_ERROR"),
        ({"SPE_Released_At__c": "2026-01-05 08:00"}, "JSON_PARSER_ERROR"),
        ({"LastName": {"nested": 1}}, "JSON_PARSER_ERROR"),
    ],
)
def test_a_bad_field_or_type_fails_the_whole_collection(
    sf: Salesforce, record: dict[str, Any], code: str
) -> None:
    good = {"attributes": {"type": "Lead"}, "SPE_Key__c": "good", "LastName": "A", "Company": "B"}
    bad = {"attributes": {"type": "Lead"}, "SPE_Key__c": "bad", **record}
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful(
            "composite/sobjects/Lead/SPE_Key__c",
            method="PATCH",
            json={"allOrNone": False, "records": [good, bad]},
        )
    assert errors(info)[0]["errorCode"] == code
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0  # nothing written


def test_datetimes_and_dates_are_written_and_read_in_salesforces_formats(
    sf: Salesforce, server: EmulatorServer
) -> None:
    record_id = lead(sf, SPE_Released_At__c="2026-01-05T09:30:00.250+01:00")
    assert sf.Lead.get(record_id)["SPE_Released_At__c"] == "2026-01-05T08:30:00.250+0000"
    opp = sf.Opportunity.create(
        {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-03-01"}
    )["id"]
    assert sf.Opportunity.get(opp)["CloseDate"] == "2026-03-01"
    for where in ("CloseDate = 2026-03-01", "CloseDate = THIS_QUARTER", "CloseDate > TODAY"):
        found = sf.query(f"SELECT Id, CloseDate FROM Opportunity WHERE {where}")["records"]
        assert [r["Id"] for r in found] == [opp], where
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT Id FROM Opportunity WHERE CloseDate = 2026-03-01T00:00:00Z")
    assert errors(info)[0]["errorCode"] == "INVALID_FIELD"


def test_retrieve_multiple_records(sf: Salesforce) -> None:
    first, second = lead(sf, Rating="Hot"), lead(sf)
    unknown = "00Q5g00000ZZZZZ"
    reply = sf.restful(
        "composite/sobjects/Lead",
        params={"ids": f"{first},{second[:15]},{unknown},not-an-id", "fields": "Id,Rating"},
    )
    assert [r and (r["Id"], r["Rating"]) for r in reply] == [
        (first, "Hot"),
        (second, None),
        None,
        None,  # an invalid Id: null (Get Records Using sObject Collections)
    ]
    assert reply[0]["attributes"]["type"] == "Lead"


def test_queries_are_case_insensitive_and_follow_parents(
    sf: Salesforce, server: EmulatorServer
) -> None:
    owner = server.org.create("User", {"Username": "o@x.example", "Name": "Ana Ruiz"})
    record_id = lead(sf, OwnerId=owner)
    lead(sf)
    rows = sf.query("select id, lastname, owner.name from lead where owner.name like 'ana%'")
    assert [(r["Id"], r["LastName"], r["Owner"]["Name"]) for r in rows["records"]] == [
        (record_id, "Ruiz", "Ana Ruiz")
    ]
    assert rows["records"][0]["Owner"]["attributes"]["type"] == "User"
    orphan = sf.query("SELECT Id, Owner.Name FROM Lead WHERE OwnerId = null")["records"]
    assert orphan[0]["Owner"] is None


def test_is_deleted_with_query_all(sf: Salesforce) -> None:
    kept, gone = lead(sf), lead(sf)
    sf.Lead.delete(gone)
    soql = "SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true"
    assert sf.query(soql)["records"] == []
    deleted = sf.query_all(soql, include_deleted=True)["records"]
    assert [(r["Id"], r["IsDeleted"]) for r in deleted] == [(gone, True)]
    every = sf.query_all("SELECT Id FROM Lead", include_deleted=True)["records"]
    assert {r["Id"] for r in every} == {kept, gone}


def test_limits_and_the_limit_header(sf: Salesforce, server: EmulatorServer) -> None:
    limits = sf.limits()
    for key in ("DailyApiRequests", "DataStorageMB", "FileStorageMB", "DailyBulkApiBatches"):
        assert set(limits[key]) == {"Max", "Remaining"}, key
    assert limits["DailyApiRequests"]["Max"] == server.org.daily_api_limit
    usage = sf.api_usage["api-usage"]
    assert usage.total == server.org.daily_api_limit and usage.used >= 1


def test_collection_records_must_say_their_type_and_their_id(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as untyped:
        sf.restful("composite/sobjects", method="POST", json={"records": [{"LastName": "A"}]})
    assert errors(untyped)[0]["errorCode"] == "INVALID_TYPE"
    record_id = lead(sf)
    typed = {"type": "Lead"}
    inserted = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"records": [{"attributes": typed, "Id": record_id, "LastName": "A", "Company": "B"}]},
    )
    assert inserted[0]["errors"][0]["statusCode"] == "INVALID_FIELD"
    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": typed, "Rating": "Hot"},
                {"attributes": typed, "id": record_id[:15], "Rating": "Warm"},
            ]
        },
    )
    assert updated[0]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert updated[1] == {"id": record_id, "success": True, "errors": []}


def test_global_describe_and_a_deleted_record(sf: Salesforce) -> None:
    described = sf.describe()
    names = {o["name"]: o for o in described["sobjects"]}
    assert names["Lead"]["keyPrefix"] == "00Q"
    assert names["Lead"]["urls"]["describe"] == "/services/data/v59.0/sobjects/Lead/describe"
    record_id = lead(sf)
    sf.Lead.delete(record_id)
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Lead.get(record_id)
    assert errors(info)[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_upsert_and_get_by_external_id(sf: Salesforce) -> None:
    created = sf.Lead.upsert("SPE_Key__c/k-1", {"LastName": "A", "Company": "B"})
    assert created == 201
    record = sf.Lead.get_by_custom_id("SPE_Key__c", "k-1")
    assert (record["LastName"], record["Rating"]) == ("A", None)
    assert sf.Lead.upsert("spe_key__c/k-1", {"Rating": "Hot"}) == 200
    assert sf.Lead.get_by_custom_id("SPE_Key__c", "k-1")["Rating"] == "Hot"
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 1
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Lead.upsert("LastName/A", {"Rating": "Hot"})
    assert errors(info)[0]["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.Lead.upsert("SPE_Key__c/k-2", {"LastName": "A"})
    assert errors(bad)[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_external_ids_are_unique_ignoring_case_and_text_has_a_length(sf: Salesforce) -> None:
    first = sf.restful(
        "composite/sobjects/Lead/SPE_Key__c",
        method="PATCH",
        json={
            "records": [
                {
                    "attributes": {"type": "Lead"},
                    "SPE_Key__c": "Key-1",
                    "LastName": "A",
                    "Company": "B",
                },
                {"attributes": {"type": "Lead"}, "SPE_Key__c": "key-1", "Rating": "Hot"},
                {
                    "attributes": {"type": "Lead"},
                    "SPE_Key__c": "k" * 81,
                    "LastName": "A",
                    "Company": "B",
                },
            ]
        },
    )
    assert first[0]["created"] and first[1] == {
        "id": first[0]["id"],
        "success": True,
        "errors": [],
        "created": False,
    }  # upserts match the unique key without regard to case
    assert first[2]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert first[2]["errors"][0]["fields"] == ["SPE_Key__c"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.text(max_size=30) | st.sampled_from(["\\%", "\\", "'", "%_", "\\'", "\\\\%"]))
def test_hostile_values_round_trip_over_http(sf: Salesforce, value: str) -> None:
    """Written as JSON, queried with format_soql (=, LIKE with the like spec, IN): the
    record comes back, with its value unchanged."""
    value = value or "-"
    record_id = sf.Lead.create({"LastName": "X", "Company": value})["id"]
    try:
        for template in ("Company = {}", "Company LIKE '{:like}'", "Company IN {}"):
            arg: Any = [value] if "IN" in template else value
            soql = format_soql(f"SELECT Id, Company FROM Lead WHERE {template}", arg)
            rows = sf.query(soql)["records"]
            assert [(r["Id"], r["Company"]) for r in rows] == [(record_id, value)], template
    finally:
        sf.Lead.delete(record_id)
