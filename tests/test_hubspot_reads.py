"""HubSpot reads, webhooks, rate limits and check(): the strict emulator's documented rules
and the adapter that survives them, driven only through hubspot-api-client over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.contacts import PublicGdprDeleteInput
from hubspot.crm.objects import (
    ApiException,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
)
from hubspot.crm.owners import ApiException as OwnersApiException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server
from werkzeug.test import Client

from spe_adapters.hubspot.adapter import TIE_EXCLUDE, HubSpotAdapter, daily_reset
from spe_adapters.hubspot.emulator import EmulatorServer
from spe_adapters.hubspot.settings import FieldMap, HubSpotSettings
from spe_adapters.hubspot.webhooks import WebhookHandler, sign_v1, sign_v2, sign_v3
from spe_core import OpportunityStatus
from spe_core.adapter import Checkable, CheckStatus
from spe_core.errors import ConfigError, MappingError, TransientError
from spe_core.sync import SyncEngine
from spe_core.testing import FakeClock
from tests.test_hubspot_adapter import TEAM_ROLES, TOKEN, HubSpotHarness, _engine

SECRET = "app-client-secret-0123456789"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    clock = FakeClock()
    server = EmulatorServer(clock=clock.now).start()
    server.clock = clock  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
def hs(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    emulator.portal.reset()
    emulator.portal.time_zone = "America/New_York"
    emulator.portal.search_lag = timedelta(0)
    emulator.portal.daily_limit = 500_000
    emulator.requests.reset_counts()
    emulator.portal.add_token(TOKEN)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    return emulator


def client(hs: EmulatorServer) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=hs.url)


def adapter(hs: EmulatorServer, **kw: Any) -> HubSpotAdapter:
    kw.setdefault("team_roles", TEAM_ROLES)
    kw.setdefault("search_requests_per_second", 0)
    clock: FakeClock = hs.clock  # type: ignore[attr-defined]
    return HubSpotAdapter(HubSpotSettings(host=hs.url, **kw), sleep=lambda s: None, clock=clock.now)


def deal(hs: EmulatorServer, status: str = "queued", **props: str) -> str:
    return hs.portal.create(
        "deals",
        {
            "dealname": "D",
            "pipeline": "default",
            "spe_account": props.pop("account", "Acme"),
            "spe_status": status,
            **props,
        },
    )


def search(hs: EmulatorServer, **body: Any) -> Any:
    body.setdefault("limit", 100)
    return client(hs).crm.objects.search_api.do_search("deals", PublicObjectSearchRequest(**body))


def status_of(exc: pytest.ExceptionInfo[Any]) -> int:
    return int(getattr(exc.value, "status", 0))


# --- the emulator's documented search rules ------------------------------------------------


def test_search_takes_one_sort_rule(hs: EmulatorServer) -> None:
    deal(hs)
    one = [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert search(hs, sorts=one).total == 1
    with pytest.raises(ApiException) as info:
        search(hs, sorts=[*one, {"propertyName": "hs_object_id", "direction": "ASCENDING"}])
    assert status_of(info) == 400
    assert "one sort rule" in json.loads(info.value.body)["message"]


def test_enumeration_filters_are_case_sensitive_text_filters_are_not(hs: EmulatorServer) -> None:
    deal(hs, dealname="Big Deal")

    def count(name: str, value: str) -> int:
        flt = [{"filters": [{"propertyName": name, "operator": "EQ", "value": value}]}]
        return int(search(hs, filter_groups=flt).total)

    assert count("spe_status", "queued") == 1
    assert count("spe_status", "QUEUED") == 0
    assert count("dealname", "big deal") == 1


def test_search_bodies_over_3000_characters_are_refused(hs: EmulatorServer) -> None:
    deal(hs)
    values = [str(10_000_000_000 + i) for i in range(250)]  # 250 ids of 11 digits
    flt = [{"filters": [{"propertyName": "hs_object_id", "operator": "NOT_IN", "values": values}]}]
    with pytest.raises(ApiException) as info:
        search(hs, filter_groups=flt)
    assert status_of(info) == 400
    assert "3000" in json.loads(info.value.body)["message"]
    short = [{"propertyName": "hs_object_id", "operator": "NOT_IN", "values": values[:100]}]
    assert search(hs, filter_groups=[{"filters": short}]).total == 1  # 1,500 characters


def test_paging_past_ten_thousand_results_is_refused(hs: EmulatorServer) -> None:
    with pytest.raises(ApiException) as info:
        search(hs, after="10000")
    assert status_of(info) == 400


def test_search_lags_behind_writes(hs: EmulatorServer) -> None:
    clock: FakeClock = hs.clock  # type: ignore[attr-defined]
    hs.portal.search_lag = timedelta(seconds=3)
    crm_id = deal(hs, spe_tier="1")
    assert search(hs).total == 0  # created, not yet in search
    clock.advance(seconds=3)
    assert search(hs).total == 1
    hs.portal.update("deals", crm_id, {"spe_tier": "2"})
    flt = [{"filters": [{"propertyName": "spe_tier", "operator": "EQ", "value": "2"}]}]
    assert search(hs, filter_groups=flt).total == 0  # search still shows tier 1
    clock.advance(seconds=3)
    assert search(hs, filter_groups=flt).total == 1
    hs.portal.search_lag = timedelta(0)


def test_privacy_deletion_purges_the_record_not_into_the_bin(hs: EmulatorServer) -> None:
    crm_id = hs.portal.create("contacts", {"email": "gdpr@x.example", "spe_status": "queued"})
    client(hs).crm.contacts.basic_api.purge(PublicGdprDeleteInput(object_id=crm_id))
    assert hs.portal.get("contacts", crm_id) is None
    read = client(hs).crm.objects.batch_api.read(
        "contacts",
        BatchReadInputSimplePublicObjectId(inputs=[{"id": crm_id}], properties=[]),
        archived=True,
    )
    assert read.results == []  # not in the recycling bin either


def test_daily_limit_resets_at_midnight_in_the_account_time_zone(hs: EmulatorServer) -> None:
    clock: FakeClock = hs.clock  # type: ignore[attr-defined]
    hs.portal.time_zone = "America/Los_Angeles"
    clock.set(datetime(2026, 3, 10, 6, 50, tzinfo=UTC))  # 23:50 PDT, March 9
    owners = client(hs).crm.owners.owners_api
    owners.get_page(limit=1)
    hs.portal.daily_limit = hs.portal.api_used  # used up
    with pytest.raises(OwnersApiException) as info:
        owners.get_page(limit=1)
    assert status_of(info) == 429
    assert json.loads(info.value.body)["policyName"] == "DAILY"
    clock.set(datetime(2026, 3, 10, 6, 59, tzinfo=UTC))  # not yet midnight there
    with pytest.raises(OwnersApiException):
        owners.get_page(limit=1)
    clock.set(datetime(2026, 3, 10, 7, 0, tzinfo=UTC))  # midnight in Los Angeles
    assert owners.get_page(limit=1).results == []


def test_missing_scopes_are_403(hs: EmulatorServer) -> None:
    narrow = "pat-narrow"
    hs.portal.add_token(narrow, ["crm.objects.owners.read"])
    api = HubSpot(access_token=narrow, host=hs.url).crm.objects.search_api
    with pytest.raises(ApiException) as info:
        api.do_search("deals", PublicObjectSearchRequest(limit=1))
    assert status_of(info) == 403
    assert json.loads(info.value.body)["category"] == "MISSING_SCOPES"


# --- the adapter's reads ---------------------------------------------------------------------


@pytest.mark.parametrize(("shared", "page"), [(450, 200), (TIE_EXCLUDE + 30, 100)])
def test_many_records_sharing_one_timestamp_are_read_once_each(
    hs: EmulatorServer, shared: int, page: int
) -> None:
    """Ties under the one sort rule come in no defined order (the emulator scrambles them):
    past the NOT_IN budget the records of one instant are read by id windows."""
    clock: FakeClock = hs.clock  # type: ignore[attr-defined]
    before = [deal(hs) for _ in range(7)]
    clock.advance(seconds=1)
    tied = [deal(hs) for _ in range(shared)]
    clock.advance(seconds=1)
    after = [deal(hs) for _ in range(40)]
    pages = list(adapter(hs, search_page_size=page).read("opportunities", None))
    ids = [r.crm_id for p in pages for r in p]
    assert sorted(ids) == sorted(before + tied + after)  # each once
    times = [r.modified_at for p in pages for r in p]
    assert times == sorted(times)
    assert all(e.status == 200 for e in hs.requests.entries)  # one sort rule, small bodies
    searches = sum(1 for e in hs.requests.entries if e.endpoint == "search")
    assert searches <= len(ids) // page + 4  # keyset paging costs at most a few calls


def test_a_read_since_a_bookmark_continues_inside_one_instant(hs: EmulatorServer) -> None:
    clock: FakeClock = hs.clock  # type: ignore[attr-defined]
    deal(hs)
    clock.advance(seconds=5)
    since = clock.now()
    tied = {deal(hs) for _ in range(12)}
    pages = list(adapter(hs, search_page_size=5).read("opportunities", since))
    assert [len(p) for p in pages] == [5, 5, 2]
    assert {r.crm_id for p in pages for r in p} == tied


def test_an_unknown_status_is_quarantined_naming_the_value_and_the_mapping(
    hs: EmulatorServer,
) -> None:
    h = HubSpotHarness(hs)
    odd = h.add_with_status("Acme", "on_hold_by_legal")
    h.add_queued("Fine Inc", 0, 0)
    h.clock.advance(minutes=10)
    engine = _engine(h, 10)
    sync = SyncEngine(engine, adapter(hs), sleep=lambda s: None)
    report = sync.run().streams["opportunities"]
    assert report.applied == 1
    (held,) = [q for q in sync.quarantined() if q.key == odd]
    assert "on_hold_by_legal" in held.reason
    assert "status_values" in held.reason


def test_an_unmapped_value_that_names_an_spe_status_is_a_mapping_error(
    hs: EmulatorServer,
) -> None:
    values = {"backlog": "b", "queued": "in_queue", "released": "released", "won": "won"}
    values |= {"lost": "lost", "disqualified": "disqualified", "expired": "expired"}
    values |= {"appointment_set": "appointment_set", "nurture": "nurture"}
    a = adapter(hs, fields=FieldMap(status_values=values))
    deal(hs, status="queued")  # "queued" is not what the mapping says queued is
    (record,) = [r for p in a.read("opportunities", None) for r in p]
    with pytest.raises(MappingError, match="status_values"):
        a.to_inbound(record)


# --- rate limits ---------------------------------------------------------------------------------


def test_ten_secondly_limit_is_transient_with_its_window(hs: EmulatorServer) -> None:
    deal(hs)
    hs.portal.faults.next_statuses = [429]
    with pytest.raises(TransientError, match="TEN_SECONDLY") as info:
        list(adapter(hs).read("opportunities", None))
    assert info.value.retry_after == 10.0


def test_daily_limit_waits_until_midnight_in_the_account_time_zone(hs: EmulatorServer) -> None:
    clock: FakeClock = hs.clock  # type: ignore[attr-defined]
    hs.portal.time_zone = "Asia/Tokyo"
    clock.set(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))  # 19:00 in Tokyo
    deal(hs)
    a = adapter(hs)
    assert a.account_time_zone() == ZoneInfo("Asia/Tokyo")  # read once, kept
    hs.portal.daily_limit = hs.portal.api_used
    with pytest.raises(TransientError) as info:
        list(a.read("opportunities", None))
    assert info.value.retry_after == 5 * 3600  # midnight in Tokyo is 15:00 UTC
    assert "Asia/Tokyo" in info.value.problem
    assert "2026-01-06 00:00 JST" in info.value.problem
    assert "2026-01-05 15:00 UTC" in info.value.problem
    assert hs.requests.counts()["account_details"] == 1


def test_daily_limit_without_the_time_zone_names_utc(hs: EmulatorServer) -> None:
    clock: FakeClock = hs.clock  # type: ignore[attr-defined]
    clock.set(datetime(2026, 1, 5, 22, 0, tzinfo=UTC))
    deal(hs)
    hs.portal.daily_limit = hs.portal.api_used  # the account-info call is refused too
    with pytest.raises(TransientError) as info:
        list(adapter(hs).read("opportunities", None))
    assert info.value.retry_after == 2 * 3600
    assert "could not be read" in info.value.problem


def test_daily_reset_across_a_dst_change() -> None:
    zone = ZoneInfo("Europe/Berlin")
    # the night the clocks go forward: midnight is still 23:00 UTC the evening before
    now = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    assert daily_reset(now, zone).astimezone(UTC) == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    summer = datetime(2026, 3, 29, 21, 0, tzinfo=UTC)
    assert daily_reset(summer, zone).astimezone(UTC) == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


# --- privacy deletions -------------------------------------------------------------------------


def _events(kind: str, object_id: str) -> bytes:
    event = {
        "eventId": 1,
        "subscriptionId": 7,
        "portalId": 4242424,
        "occurredAt": 1767614400000,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": int(object_id),
        "changeSource": "GDPR",
    }
    return json.dumps([event]).encode()


def test_a_privacy_deletion_withdraws_the_contact(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = HubSpotHarness(hs)
    for i in range(2):
        hs.portal.create(
            "contacts", {"email": f"c{i}@x.example", "company": f"Co {i}", "spe_status": "queued"}
        )
    h.clock.advance(minutes=10)
    a = adapter(hs, queued_object="contacts")
    engine = _engine(h, 10)
    sync = SyncEngine(engine, a, sleep=lambda s: None)
    assert sync.run().streams["opportunities"].applied == 2
    gone, kept = sorted(engine.store.opportunities(), key=lambda o: o.id)
    crm_id = gone.external_id("hubspot") or ""
    client(hs).crm.contacts.basic_api.purge(PublicGdprDeleteInput(object_id=crm_id))
    monkeypatch.setenv("HUBSPOT_APP_SECRET", SECRET)
    handler = WebhookHandler.for_sync(a.settings, sync, a, clock=h.clock.now)
    body = _events("contact.privacyDeletion", crm_id)
    reply = handler.handle("POST", "https://x.example/hook", _v3(body, h.clock.now()), body)
    assert reply.status == 200, reply.body
    assert reply.body["deleted"] == {"opportunities": 1}
    assert engine.opportunity(gone.id).status is OpportunityStatus.WITHDRAWN
    assert engine.opportunity(kept.id).status is not OpportunityStatus.WITHDRAWN


# --- webhooks ----------------------------------------------------------------------------------

NOW = datetime(2026, 1, 5, 10, tzinfo=UTC)


def _v3(body: bytes, at: datetime, uri: str = "https://x.example/hook") -> dict[str, str]:
    timestamp = str(int(at.timestamp() * 1000))
    return {
        "X-HubSpot-Signature-v3": sign_v3(SECRET, "POST", uri, body, timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def _handler(**kw: Any) -> tuple[WebhookHandler, list[list[str]]]:
    applied: list[list[str]] = []
    handler = WebhookHandler(SECRET, lambda s, ids: applied.append(ids), clock=lambda: NOW, **kw)
    return handler, applied


def test_v1_and_v2_signatures_are_accepted_with_the_client_secret() -> None:
    handler, applied = _handler()
    body = _events("deal.propertyChange", "501")
    uri = "https://x.example/hook?a=1&b=x+y"
    # HubSpot's documented v1 example: sha256(secret + body) as hex
    assert sign_v1(SECRET, body) == hashlib.sha256(SECRET.encode() + body).hexdigest()
    v1 = {"X-HubSpot-Signature": sign_v1(SECRET, body), "X-HubSpot-Signature-Version": "v1"}
    v2 = {
        "X-HubSpot-Signature": sign_v2(SECRET, "POST", uri, body),
        "X-HubSpot-Signature-Version": "v2",
    }
    assert handler.handle("POST", uri, v1, body).status == 200
    assert handler.handle("POST", uri, v2, body).status == 200
    wrong = handler.handle("POST", uri.replace("+", "%20"), v2, body)  # the URI exactly
    assert wrong.status == 401 and "v2 signature" in wrong.body["error"]
    tampered = handler.handle("POST", uri, v1, body.replace(b"501", b"502"))
    assert tampered.status == 401
    assert applied == [["501"], ["501"]]


def test_min_version_refuses_older_signatures_and_v3_wins_when_present() -> None:
    handler, applied = _handler(min_version="v3")
    body = _events("deal.creation", "7")
    v1 = {"X-HubSpot-Signature": sign_v1(SECRET, body), "X-HubSpot-Signature-Version": "v1"}
    refused = handler.handle("POST", "https://x.example/hook", v1, body)
    assert refused.status == 401 and "min_version" in refused.body["error"]
    both = {**v1, **_v3(body, NOW)}
    assert handler.handle("POST", "https://x.example/hook", both, body).status == 200
    forged = {**v1, **_v3(body, NOW), "X-HubSpot-Signature-v3": "forged"}
    assert handler.handle("POST", "https://x.example/hook", forged, body).status == 401
    assert applied == [["7"]]


def test_v3_timestamps_five_minutes_old_and_sixty_seconds_ahead_are_the_limits() -> None:
    handler, _ = _handler()
    body = _events("deal.creation", "7")
    cases = {
        timedelta(minutes=-5): 200,
        timedelta(minutes=-5, milliseconds=-1): 401,
        timedelta(seconds=60): 200,
        timedelta(seconds=60, milliseconds=1): 401,
    }
    for shift, status in cases.items():
        reply = handler.handle("POST", "https://x.example/hook", _v3(body, NOW + shift), body)
        assert reply.status == status, (shift, reply.body)
    lenient, _ = _handler(max_future=timedelta(minutes=2))
    ahead = _v3(body, NOW + timedelta(seconds=90))
    assert lenient.handle("POST", "https://x.example/hook", ahead, body).status == 200


RAW = "/hubspot/web+hook/a%2Bb?tag=x+y&email=a%40b.example&q=%20"


def test_the_wsgi_mount_verifies_the_uri_as_sent_including_plus_and_escapes() -> None:
    handler, applied = _handler()
    body = _events("deal.creation", "88")
    signed = "http://localhost" + RAW
    reply = Client(handler).post(RAW, data=body, headers=_v3(body, NOW, signed))
    assert reply.status_code == 200, reply.get_data(as_text=True)
    server = make_server("127.0.0.1", 0, handler, threaded=True)  # a real HTTP request line
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"127.0.0.1:{server.server_port}"
        headers = _v3(body, NOW, f"http://{host}{RAW}")
        with requests.Session() as http:
            prepared = requests.Request("POST", f"http://{host}/x", data=body, headers=headers)
            request = http.prepare_request(prepared)
            request.url = f"http://{host}{RAW}"  # exactly these bytes on the request line
            answer = http.send(request, timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        server.shutdown()
        server.server_close()
    assert applied == [["88"], ["88"]]


def test_the_asgi_mount_verifies_the_uri_as_sent() -> None:
    handler, applied = _handler()
    body = _events("deal.creation", "99")
    path, _, query = RAW.partition("?")
    headers = _v3(body, NOW, "https://spe.example" + RAW)
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/hubspot/web+hook/a+b",  # decoded: what raw_path keeps apart
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"spe.example")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    sent: list[dict[str, Any]] = []
    chunks = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.request", "body": body[10:], "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(handler.asgi(scope, receive, send))
    assert sent[0]["status"] == 200, sent
    assert applied == [["99"]]


# --- check() -------------------------------------------------------------------------------


def _by_part(results: Any) -> dict[str, Any]:
    return {r.part: r for r in results}


def test_check_reads_the_time_zone_scopes_and_properties(hs: EmulatorServer) -> None:
    hs.portal.time_zone = "Europe/Berlin"
    results = adapter(hs).check()
    parts = _by_part(results)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    assert "Europe/Berlin" in parts["time zone"].detail
    assert parts["scope crm.objects.deals.write"].ok
    assert "property deals.spe_status" in parts
    assert "property tasks.spe_task_kind" in parts


def test_check_names_missing_scopes_and_wrong_properties(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hs.portal.add_token(
        "pat-narrow",
        [
            "crm.objects.owners.read",
            "crm.objects.deals.read",
            "crm.objects.contacts.read",
            "crm.objects.contacts.write",
        ],
    )
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-narrow")
    fields = FieldMap(
        key_property="dealname",
        tier_property="dealstage",
        status_values={**FieldMap().status_values, "won": "closed_won"},
    )
    parts = _by_part(adapter(hs, fields=fields).check())
    scope = parts["scope crm.objects.deals.write"]
    assert scope.status is CheckStatus.PROBLEM and "Scopes tab" in (scope.fix or "")
    assert "enumeration" in parts["property deals.dealstage"].detail  # a number is needed
    assert "unique" in parts["property deals.dealname"].detail
    assert "closed_won" in parts["property deals.spe_status"].detail


def test_check_with_a_wrong_token_or_a_dead_port_never_raises(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-wrong")
    login, *rest = adapter(hs).check()
    assert login.status is CheckStatus.PROBLEM and "401" in login.detail
    assert "access_token_env" in (login.fix or "")
    assert "pat-wrong" not in login.detail + (login.fix or "")
    assert rest and all(r.status is CheckStatus.NOT_CHECKED for r in rest)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here
    dead = HubSpotAdapter(HubSpotSettings(host=f"http://127.0.0.1:{port}", team_roles=TEAM_ROLES))
    login, *rest = dead.check()
    assert login.status is CheckStatus.PROBLEM and "refused the connection" in login.detail
    assert all(r.status is CheckStatus.NOT_CHECKED for r in rest)


def test_webhook_settings_configure_the_receiver(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_APP_SECRET", SECRET)
    a = adapter(hs, webhook_min_signature_version="v3", webhook_max_future_seconds=0)
    sync = SyncEngine(_engine(HubSpotHarness(hs), 10), a, sleep=lambda s: None)
    handler = WebhookHandler.for_sync(a.settings, sync, a, clock=lambda: NOW)
    body = _events("deal.propertyChange", "1")
    v1 = {"X-HubSpot-Signature": sign_v1(SECRET, body), "X-HubSpot-Signature-Version": "v1"}
    assert handler.handle("POST", "https://x.example/hook", v1, body).status == 401
    ahead = _v3(body, NOW + timedelta(seconds=1))
    assert handler.handle("POST", "https://x.example/hook", ahead, body).status == 401
    with pytest.raises(ConfigError, match="webhook_min_signature_version"):
        HubSpotSettings.from_mapping({"webhook_min_signature_version": "v4"})


def test_records_search_has_not_indexed_yet_come_in_with_the_next_run(
    hs: EmulatorServer,
) -> None:
    """Search lags writes; the sync's bookmark stays ``clock_skew`` (5 minutes) behind the
    run's start, so a deal written just before a run, invisible to that run's search, is
    read by the next one."""
    h = HubSpotHarness(hs)
    hs.portal.search_lag = timedelta(seconds=20)
    h.add_queued("Early", 0, 0)
    h.clock.advance(minutes=10)
    engine = _engine(h, 10)
    sync = SyncEngine(engine, adapter(hs), sleep=lambda s: None)
    late = h.add_queued("Late", 0, 0)
    h.clock.advance(seconds=5)  # the run starts before search shows the late deal
    assert sync.run().streams["opportunities"].applied == 1
    h.clock.advance(minutes=1)
    assert sync.run().streams["opportunities"].applied == 1
    assert late in {o.external_id("hubspot") for o in engine.store.opportunities()}


# --- properties -------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Apia",
]


@given(
    at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(ZONES),
)
def test_the_daily_reset_is_the_next_local_midnight(at: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    reset = daily_reset(at, tz).astimezone(UTC)
    assert at < reset <= at + timedelta(hours=25)
    # no local date change between now and the reset: it is the first midnight after now
    assert (reset - timedelta(microseconds=1)).astimezone(tz).date() == at.astimezone(tz).date()


_URI_PART = st.text(alphabet="abc+%20/=&?:@!$'()*,;~-._2F", min_size=0, max_size=30)


@given(body=st.binary(max_size=200), tail=_URI_PART, flip=st.integers(min_value=0))
def test_every_signature_version_verifies_and_any_changed_byte_is_refused(
    body: bytes, tail: str, flip: int
) -> None:
    handler, _ = _handler()
    uri = "https://x.example/hook/" + tail
    ts = str(int(NOW.timestamp() * 1000))
    signed = {
        "v1": {"X-HubSpot-Signature": sign_v1(SECRET, body), "X-HubSpot-Signature-Version": "v1"},
        "v2": {
            "X-HubSpot-Signature": sign_v2(SECRET, "POST", uri, body),
            "X-HubSpot-Signature-Version": "v2",
        },
        "v3": {
            "X-HubSpot-Signature-v3": sign_v3(SECRET, "POST", uri, body, ts),
            "X-HubSpot-Request-Timestamp": ts,
        },
    }
    for headers in signed.values():
        assert handler.verify("POST", uri, headers, body) is None
    if body:
        i = flip % len(body)
        changed = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
        for headers in signed.values():
            assert handler.verify("POST", uri, headers, changed) is not None


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    groups=st.lists(st.integers(min_value=1, max_value=130), min_size=1, max_size=4),
    page=st.sampled_from([7, 50, 200]),
)
def test_a_read_returns_each_record_once_whatever_the_ties(
    hs: EmulatorServer, groups: list[int], page: int
) -> None:
    """Records in groups sharing one modification time (ties scrambled by the emulator),
    any page size: one read returns each exactly once, in modification order."""
    clock: FakeClock = hs.clock  # type: ignore[attr-defined]
    hs.portal.reset()
    hs.portal.add_token(TOKEN)
    made: list[str] = []
    for size in groups:
        made += [deal(hs) for _ in range(size)]
        clock.advance(seconds=1)
    records = [r for p in adapter(hs, search_page_size=page).read("opportunities", None) for r in p]
    assert sorted(r.crm_id for r in records) == sorted(made)
    times = [r.modified_at for r in records]
    assert times == sorted(times)


def test_check_without_a_token_in_the_environment_says_which_variable(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN")
    a = adapter(hs)
    assert isinstance(a, Checkable)
    login, *rest = a.check()
    assert login.status is CheckStatus.PROBLEM and "HUBSPOT_ACCESS_TOKEN" in login.detail
    assert all(r.status is CheckStatus.NOT_CHECKED for r in rest)
