"""The HubSpot emulator on its own: search subset and caps, batch shapes and 207s, errors,
rate-limit faults, and replies that deserialize through hubspot-api-client's own models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.objects import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
)
from urllib3.util.retry import Retry

from spe_adapters.hubspot.emulator import EmulatorServer
from spe_adapters.hubspot.emulator.models import epoch_ms
from spe_core.testing import FakeClock

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    clock = FakeClock(NOW)
    with EmulatorServer(clock=clock.now) as s:
        s.clock = clock  # type: ignore[attr-defined]
        yield s


@pytest.fixture
def hs(server: EmulatorServer) -> EmulatorServer:
    server.portal.reset()
    server.requests.reset_counts()
    server.clock.set(NOW)  # type: ignore[attr-defined]
    return server


@pytest.fixture
def http(hs: EmulatorServer) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {hs.portal.new_token()}"
    return session


def client(hs: EmulatorServer) -> Any:
    return HubSpot(access_token=hs.portal.new_token(), host=hs.url, retry=Retry(total=0))


def search(http: requests.Session, hs: EmulatorServer, body: dict[str, Any]) -> requests.Response:
    return http.post(f"{hs.url}/crm/v3/objects/deals/search", json=body)


def names(reply: requests.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [r["properties"]["dealname"] for r in reply.json()["results"]]


def _deals(hs: EmulatorServer) -> None:
    clock: FakeClock = hs.clock  # type: ignore[attr-defined]
    for name, amount, status in [
        ("a", "100", "queued"),
        ("b", "250", None),
        ("c", "50", "released"),
        ("d", "1000", "queued"),
    ]:
        hs.portal.create(
            "deals",
            {"dealname": name, "amount": amount, "spe_status": status, "pipeline": "default"},
        )
        clock.advance(minutes=1)


def test_search_filters_and_sorts(hs: EmulatorServer, http: requests.Session) -> None:
    _deals(hs)
    props = ["dealname"]
    eq = {"filters": [{"propertyName": "spe_status", "operator": "EQ", "value": "queued"}]}
    assert names(search(http, hs, {"filterGroups": [eq], "properties": props})) == ["a", "d"]
    upper = {"filters": [{"propertyName": "spe_status", "operator": "EQ", "value": "QUEUED"}]}
    assert names(search(http, hs, {"filterGroups": [upper]})) == []  # enumerations: exact
    gt = {"propertyName": "amount", "operator": "GT", "value": "100"}
    assert names(
        search(
            http,
            hs,
            {
                "filterGroups": [{"filters": [gt]}],
                "sorts": [{"propertyName": "amount", "direction": "DESCENDING"}],
                "properties": props,
            },
        )
    ) == ["d", "b"]
    cutoff = epoch_ms(NOW + timedelta(minutes=2))
    since = {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(cutoff)}
    assert names(
        search(http, hs, {"filterGroups": [{"filters": [since]}], "properties": props})
    ) == [
        "c",
        "d",
    ]
    before = {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": cutoff}
    lte = {"propertyName": "amount", "operator": "LTE", "value": "100"}
    assert names(
        search(http, hs, {"filterGroups": [{"filters": [before, lte]}], "properties": props})
    ) == ["a"]
    has = {"propertyName": "spe_status", "operator": "HAS_PROPERTY"}
    in_ = {"propertyName": "dealname", "operator": "IN", "values": ["b", "c"]}
    assert names(  # filter groups are ORed
        search(
            http,
            hs,
            {
                "filterGroups": [{"filters": [has, lte]}, {"filters": [in_]}],
                "sorts": ["dealname"],
                "properties": props,
            },
        )
    ) == ["a", "b", "c"]
    reply = search(http, hs, {"limit": 2, "properties": props})
    assert reply.json()["total"] == 4
    assert reply.json()["paging"]["next"]["after"] == "2"
    assert names(search(http, hs, {"limit": 2, "after": "2", "properties": props})) == ["c", "d"]
    assert "paging" not in search(http, hs, {"limit": 2, "after": "2"}).json()


def test_search_caps_are_http_400(hs: EmulatorServer, http: requests.Session) -> None:
    _deals(hs)
    for body, words in [
        ({"limit": 201}, "limit"),
        ({"after": "10000"}, "10000"),
        ({"filterGroups": [{"filters": [{"propertyName": "nope", "value": "x"}]}]}, "nope"),
        ({"filterGroups": [{"filters": []}] * 6}, "filterGroups"),
    ]:
        reply = search(http, hs, body)
        assert reply.status_code == 400, body
        error = reply.json()
        assert error["status"] == "error"
        assert error["category"] == "VALIDATION_ERROR"
        assert words in error["message"]
        assert error["correlationId"]
    assert search(http, hs, {"after": "9999"}).status_code == 200


def test_errors_auth_and_rate_limits(hs: EmulatorServer, http: requests.Session) -> None:
    reply = requests.get(f"{hs.url}/crm/v3/owners/", headers={"Authorization": "Bearer nope"})
    assert reply.status_code == 401
    assert reply.json()["category"] == "INVALID_AUTHENTICATION"
    hs.portal.faults.next_statuses = [429, 502]
    limited = http.get(f"{hs.url}/crm/v3/owners/")
    assert limited.status_code == 429
    assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert limited.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert http.get(f"{hs.url}/crm/v3/owners/").status_code == 502
    ok = http.get(f"{hs.url}/crm/v3/owners/")
    assert ok.status_code == 200
    assert int(ok.headers["X-HubSpot-RateLimit-Daily-Remaining"]) > 0
    hs.portal.faults.daily_limit_hit = True
    daily = http.get(f"{hs.url}/crm/v3/owners/")
    assert daily.json()["policyName"] == "DAILY"
    assert daily.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    counts = hs.requests.counts()
    assert counts["owners"] == 5  # every request counts, refused ones too


def test_batch_limits_and_all_or_nothing_updates(
    hs: EmulatorServer, http: requests.Session
) -> None:
    base = f"{hs.url}/crm/v3/objects/deals/batch"
    too_many = [{"id": str(i), "idProperty": "spe_key", "properties": {}} for i in range(101)]
    reply = http.post(f"{base}/upsert", json={"inputs": too_many})
    assert reply.status_code == 400
    assert "100" in reply.json()["message"]
    inputs = [
        {"id": "k1", "idProperty": "spe_key", "properties": {"spe_status": "queued"}},
        {"id": "k2", "idProperty": "spe_key", "properties": {"spe_status": "not-a-status"}},
    ]
    first = http.post(f"{base}/upsert", json={"inputs": inputs})
    assert first.status_code == 400  # one bad input fails the whole upsert
    assert first.json()["category"] == "VALIDATION_ERROR"
    assert "not-a-status" in first.json()["message"]
    assert hs.portal.objects["deals"] == {}  # nothing written
    again = http.post(f"{base}/upsert", json={"inputs": inputs[:1]})
    assert again.status_code == 200
    assert again.json()["results"][0]["new"] is True
    http.post(f"{base}/upsert", json={"inputs": inputs[:1]})
    assert len(hs.portal.objects["deals"]) == 1  # upserts by spe_key never duplicate
    deal_id = again.json()["results"][0]["id"]
    update = http.post(
        f"{base}/update",
        json={
            "inputs": [
                {"id": deal_id, "properties": {"spe_status": "released"}},
                {"id": "999999", "properties": {"spe_status": "released"}},
            ]
        },
    )
    assert update.status_code == 400
    assert update.json()["category"] == "OBJECT_NOT_FOUND"
    assert hs.portal.objects["deals"][deal_id]["properties"]["spe_status"] == "queued"
    dup = http.post(f"{base}/update", json={"inputs": [{"id": "1", "properties": {}}] * 2})
    assert dup.status_code == 400


def test_replies_deserialize_through_the_clients_models(hs: EmulatorServer) -> None:
    hs.portal.add_owner("Ana", "Ruiz", "ana@acme.example", teams=["Inside Sales"])
    hs.portal.add_owner("Ben", "Okafor", "ben@acme.example")
    _deals(hs)
    api = client(hs)
    owners = api.crm.owners.owners_api.get_page(limit=1)
    assert owners.results[0].email == "ana@acme.example"
    assert owners.results[0].teams[0].name == "Inside Sales"
    assert owners.paging.next.after == "1"
    page = api.crm.objects.basic_api.get_page("deals", limit=3, properties=["dealname"])
    assert [r.properties["dealname"] for r in page.results] == ["a", "b", "c"]
    nxt = api.crm.objects.basic_api.get_page("deals", limit=3, after=page.paging.next.after)
    assert len(nxt.results) == 1
    found = api.crm.objects.search_api.do_search(
        "deals",
        PublicObjectSearchRequest(
            limit=2,
            properties=["dealname"],
            sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        ),
    )
    assert found.total == 4
    assert found.paging.next.after == "2"
    assert isinstance(found.results[0].updated_at, datetime)
    ids = [r.id for r in found.results]
    read = api.crm.objects.batch_api.read(
        "deals",
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": ids[0]}, {"id": "424242"}],
            properties=["dealname"],
            properties_with_history=[],
        ),
    )
    assert type(read).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert read.errors[0].category == "OBJECT_NOT_FOUND"
    updated = api.crm.objects.batch_api.update(
        "deals",
        BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": ids[0], "properties": {"spe_status": "released"}}]
        ),
    )
    assert type(updated).__name__ == "BatchResponseSimplePublicObject"
    assert updated.status == "COMPLETE"
    upserted = api.crm.objects.batch_api.upsert(
        "deals",
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[{"id": "k9", "idProperty": "spe_key", "properties": {"dealname": "e"}}]
        ),
    )
    assert upserted.results[0].new is True
    with pytest.raises(ApiException) as info:
        api.crm.objects.search_api.do_search("deals", PublicObjectSearchRequest(after="10000"))
    assert info.value.status == 400
    # archiving moves a deal to the recycling bin: only an archived batch read sees it
    api.crm.objects.basic_api.archive("deals", ids[1])
    with pytest.raises(ApiException) as info:
        api.crm.objects.basic_api.get_by_id("deals", ids[1])
    assert info.value.status == 404
    after = api.crm.objects.search_api.do_search("deals", PublicObjectSearchRequest(limit=10))
    assert ids[1] not in {r.id for r in after.results} and after.total == 4
    binned = api.crm.objects.batch_api.read(
        "deals",
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": ids[1]}, {"id": ids[0]}],
            properties=["dealname"],
            properties_with_history=[],
        ),
        archived=True,
    )
    assert [r.id for r in binned.results] == [ids[1]]
    assert binned.results[0].archived is True
    assert isinstance(binned.results[0].archived_at, datetime)
    assert binned.errors[0].context == {"ids": [ids[0]]}


def test_admin_endpoints_and_seed(hs: EmulatorServer) -> None:
    plain = requests.Session()
    plain.trust_env = False
    token = plain.post(f"{hs.url}/__emulator/seed", json={"seed": 3, "deals": 20}).json()
    assert token["access_token"] in hs.portal.tokens
    assert len(hs.portal.objects["deals"]) == 20
    assert len(hs.portal.owners) == 8
    plain.post(f"{hs.url}/__emulator/faults", json={"next_statuses": [503]})
    assert hs.portal.faults.next_statuses == [503]
    counts = plain.get(f"{hs.url}/__emulator/requests").json()["counts"]
    assert counts["admin_seed"] == 1
    plain.post(f"{hs.url}/__emulator/reset")
    assert hs.portal.objects["deals"] == {}


def test_contacts_carry_lastmodifieddate(hs: EmulatorServer, http: requests.Session) -> None:
    hs.portal.create("contacts", {"email": "x@acme.example", "spe_status": "queued"})
    reply = http.post(f"{hs.url}/crm/v3/objects/contacts/search", json={"properties": ["email"]})
    props = reply.json()["results"][0]["properties"]
    assert props["lastmodifieddate"] == "2026-01-05T12:00:00.000Z"
    assert "hs_lastmodifieddate" not in props
    bad = http.post(
        f"{hs.url}/crm/v3/objects/contacts/batch/create",
        json={"inputs": [{"properties": {"hs_lastmodifieddate": "1"}}]},
    )
    assert bad.status_code == 400  # no objectWriteTraceId: the whole batch fails
    assert "does not exist" in bad.json()["message"]


def test_spe_emulator_hubspot_serves_a_seeded_portal(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "spe_adapters.hubspot.emulator", "--port", "0"),
            *("--seed", "3", "--state-dir", str(tmp_path)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split(" at ")[1].strip()
        line = ""
        while "HUBSPOT_ACCESS_TOKEN=" not in line:
            line = proc.stdout.readline()
            assert line, "the emulator printed no token"
        token = line.split("HUBSPOT_ACCESS_TOKEN=")[1].strip()
        session = requests.Session()
        session.trust_env = False
        reply = session.post(
            f"{url}/crm/v3/objects/deals/search",
            json={"limit": 1},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.json()["total"] == 300
    finally:
        proc.terminate()
        proc.wait(10)
