"""The Salesforce emulator on its own: SOQL subset, REST shapes, admin endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from spe_adapters.salesforce.emulator import EmulatorServer
from spe_adapters.salesforce.emulator.soql import SoqlError, parse
from spe_core.testing import FakeClock

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    clock = FakeClock(NOW)
    with EmulatorServer(clock=clock.now) as s:
        yield s


@pytest.fixture
def http(server: EmulatorServer) -> requests.Session:
    server.org.reset()
    server.requests.reset_counts()
    server.org.add_login("u@x.example", "pw")
    session = requests.Session()
    session.trust_env = False
    session.verify = server.ca_path
    token = session.post(
        f"{server.url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": "c",
            "username": "u@x.example",
            "password": "pw",
        },
    ).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def q(http: requests.Session, server: EmulatorServer, soql: str) -> list[str]:
    reply = http.get(f"{server.url}/services/data/v59.0/query", params={"q": soql})
    assert reply.status_code == 200, reply.text
    return [r["LastName"] for r in reply.json()["records"]]


def test_soql_subset(http: requests.Session, server: EmulatorServer) -> None:
    org = server.org
    for name, company, rating in [
        ("a", "Acme", "Hot"),
        ("b", "Acme Corp", None),
        ("c", "Initech", "Cold"),
        ("d", "50% Off", "Warm"),
    ]:
        org.create("Lead", {"LastName": name, "Company": company, "Rating": rating})
    base = "SELECT LastName FROM Lead"
    assert q(http, server, f"{base} WHERE Company LIKE 'Acme%' ORDER BY LastName") == ["a", "b"]
    assert q(http, server, f"{base} WHERE Company LIKE '50\\% Off'") == ["d"]
    assert q(http, server, f"{base} WHERE Rating IN ('Hot', 'Cold') ORDER BY LastName DESC") == [
        "c",
        "a",
    ]
    assert q(
        http,
        server,
        f"{base} WHERE Rating NOT IN ('Hot') AND NOT Company = 'Initech' ORDER BY LastName",
    ) == ["b", "d"]
    assert q(
        http, server, f"{base} WHERE (Rating = null OR Rating = 'Warm') ORDER BY LastName"
    ) == ["b", "d"]
    assert q(http, server, f"{base} ORDER BY Rating ASC NULLS LAST, LastName LIMIT 2 OFFSET 1") == [
        "a",
        "d",
    ]
    assert q(http, server, f"{base} WHERE CreatedDate = TODAY ORDER BY LastName") == list("abcd")
    assert q(http, server, f"{base} WHERE CreatedDate < LAST_N_DAYS:1") == []
    since = (NOW - timedelta(hours=1)).isoformat()
    assert len(q(http, server, f"{base} WHERE SystemModstamp >= {since}")) == 4
    count = http.get(
        f"{server.url}/services/data/v59.0/query", params={"q": "SELECT COUNT() FROM Lead"}
    ).json()
    assert count["totalSize"] == 4
    bad = http.get(f"{server.url}/services/data/v59.0/query", params={"q": "SELECT FROM"})
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "MALFORMED_QUERY"
    unknown = http.get(
        f"{server.url}/services/data/v59.0/query", params={"q": "SELECT Nope__c FROM Lead"}
    )
    assert unknown.json()[0]["errorCode"] == "INVALID_FIELD"


def test_parser_rejects_broken_queries() -> None:
    for text in [
        "SELECT Id FROM Lead WHERE",
        "SELECT Id Lead",
        "SELECT Id FROM Lead LIMIT x",
        "SELECT Id FROM Lead WHERE Name = 'unterminated",
        "SELECT Id FROM Lead WHERE Name = 'bad \\q escape'",
    ]:
        with pytest.raises(SoqlError):
            parse(text)


def test_records_collections_and_errors(http: requests.Session, server: EmulatorServer) -> None:
    api = f"{server.url}/services/data/v59.0"
    created = http.post(f"{api}/sobjects/Lead/", json={"LastName": "x", "Company": "y"})
    assert created.status_code == 201
    lead_id = created.json()["id"]
    assert http.get(f"{api}/sobjects/Lead/{lead_id}").json()["Company"] == "y"
    assert http.patch(f"{api}/sobjects/Lead/{lead_id}", json={"Rating": "Hot"}).status_code == 204
    missing = http.post(f"{api}/sobjects/Lead/", json={"LastName": "x"})
    assert missing.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    first = {"attributes": {"type": "Lead"}, "SPE_Key__c": "k1", "LastName": "n", "Company": "c"}
    # an unknown field in any record fails the whole request (sObject Collections)
    refused = http.patch(
        f"{api}/composite/sobjects/Lead/SPE_Key__c",
        json={
            "allOrNone": False,
            "records": [
                first,
                {"attributes": {"type": "Lead"}, "SPE_Key__c": "k2", "Colour__c": "red"},
            ],
        },
    )
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "INVALID_FIELD"
    assert server.org.by_external.get(("Lead", "SPE_Key__c", "k1")) is None  # nothing written
    upsert = http.patch(
        f"{api}/composite/sobjects/Lead/SPE_Key__c",
        json={
            "allOrNone": False,
            "records": [
                first,
                {"attributes": {"type": "Lead"}, "SPE_Key__c": "k2", "LastName": "n"},
            ],
        },
    ).json()
    assert upsert[0]["success"] and upsert[0]["created"]
    assert upsert[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert "id" not in upsert[1]  # documented failures carry no id
    again = http.patch(
        f"{api}/composite/sobjects/Lead/SPE_Key__c",
        json={
            "allOrNone": False,
            "records": [{"attributes": {"type": "Lead"}, "SPE_Key__c": "k1", "Rating": "Warm"}],
        },
    ).json()
    assert again[0]["created"] is False
    rolled = http.patch(
        f"{api}/composite/sobjects",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Lead"}, "Id": lead_id, "Rating": "Cold"},
                {"attributes": {"type": "Lead"}, "Id": "00Qbad", "Rating": "Cold"},
            ],
        },
    ).json()
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert server.org.get("Lead", lead_id)["Rating"] == "Hot"  # type: ignore[index]
    too_many = http.patch(f"{api}/composite/sobjects", json={"records": [{}] * 201})
    assert too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    describe = http.get(f"{api}/sobjects/Lead/describe").json()
    key = next(f for f in describe["fields"] if f["name"] == "SPE_Key__c")
    assert key["externalId"] is True
    limits = http.get(f"{api}/limits")
    assert "api-usage=" in limits.headers["Sforce-Limit-Info"]
    assert limits.json()["DailyApiRequests"]["Max"] == server.org.daily_api_limit


def test_a_refused_record_fails_its_whole_collection_request(
    http: requests.Session, server: EmulatorServer
) -> None:
    """Fault ``refused_in_request`` (set over the admin route): any collection request
    holding the record (by Id or SPE_Key__c) is a 400 JSON_PARSER_ERROR, nothing written;
    the same records without it are written."""
    api = f"{server.url}/services/data/v59.0"
    good = server.org.create("Lead", {"LastName": "g", "Company": "c"})
    bad = server.org.create("Lead", {"LastName": "b", "Company": "c"})
    http.post(f"{server.url}/__emulator/faults", json={"refused_in_request": [bad, "k-bad"]})
    update = [{"attributes": {"type": "Lead"}, "Id": i, "Rating": "Hot"} for i in (good, bad)]
    refused = http.patch(f"{api}/composite/sobjects", json={"records": update})
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert (server.org.get("Lead", good) or {}).get("Rating") is None  # nothing written
    upsert = [
        {"attributes": {"type": "Lead"}, "SPE_Key__c": k, "LastName": "n", "Company": "c"}
        for k in ("k-good", "k-bad")
    ]
    refused = http.patch(f"{api}/composite/sobjects/Lead/SPE_Key__c", json={"records": upsert})
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert server.org.by_external.get(("Lead", "SPE_Key__c", "k-good")) is None
    fine = http.patch(f"{api}/composite/sobjects", json={"records": update[:1]})
    assert fine.status_code == 200 and fine.json()[0]["success"]
    assert (server.org.get("Lead", good) or {}).get("Rating") == "Hot"
    http.post(f"{server.url}/__emulator/faults", json={})
    assert not server.org.faults.refused_in_request


def test_admin_endpoints_drive_the_emulator(http: requests.Session, server: EmulatorServer) -> None:
    admin = f"{server.url}/__emulator"
    login = http.post(f"{admin}/seed", json={"seed": 3, "leads": 25}).json()
    assert login["username"] == "spe@demo.example"
    assert len(server.org.records["Lead"]) == 25
    http.post(f"{admin}/faults", json={"next_statuses": [503]})
    assert http.get(f"{server.url}/services/data/v59.0/limits").status_code == 503
    assert http.get(f"{server.url}/services/data/v59.0/limits").status_code == 200
    counts = http.get(f"{admin}/requests").json()["counts"]
    assert counts["limits"] == 2
    http.post(f"{admin}/faults", json={"expire_sessions": True})
    expired = http.get(f"{server.url}/services/data/v59.0/limits")
    assert expired.status_code == 401
    assert expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    http.post(f"{admin}/reset")
    assert server.org.records["Lead"] == {}


def test_deleted_records_go_to_the_recycle_bin_and_only_query_all_sees_them(
    http: requests.Session, server: EmulatorServer
) -> None:
    api = f"{server.url}/services/data/v59.0"
    ids = [server.org.create("Lead", {"LastName": f"L{i}", "Company": "Acme"}) for i in range(250)]
    assert http.delete(f"{api}/sobjects/Lead/{ids[0]}").status_code == 204
    again = http.delete(f"{api}/sobjects/Lead/{ids[0]}")
    assert again.status_code == 404 and again.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert http.get(f"{api}/sobjects/Lead/{ids[0]}").status_code == 404
    soql = "SELECT Id, IsDeleted FROM Lead ORDER BY LastName DESC"
    live = http.get(f"{api}/query", params={"q": soql}).json()
    assert live["totalSize"] == 249 and ids[0] not in {r["Id"] for r in live["records"]}
    # queryAll pages (its nextRecordsUrl says /query/, as Salesforce's does) include it
    headers = {"Sforce-Query-Options": "batchSize=200"}
    reply = http.get(f"{api}/queryAll/", params={"q": soql}, headers=headers).json()
    records = list(reply["records"])
    assert reply["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
    records += http.get(server.url + reply["nextRecordsUrl"], headers=headers).json()["records"]
    assert len(records) == 250
    deleted = [r for r in records if r["IsDeleted"]]
    assert [r["Id"] for r in deleted] == [ids[0]]
    assert server.requests.counts()["query_all"] == 1
