"""HubSpot writes as HubSpot documents them, driven only through hubspot-api-client against
the strict emulator, replies deserialised through the client's own models: whole-batch
refusals, 207 for create with trace ids, unordered results, PROCESSING and left-out
results, required ``hs_timestamp``, batch archive, single create and PATCH; then the
adapter's side of each rule."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.objects import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hypothesis import given
from hypothesis import strategies as st
from urllib3.util.retry import Retry

from spe_adapters.hubspot.adapter import HubSpotAdapter
from spe_adapters.hubspot.emulator import EmulatorServer
from spe_adapters.hubspot.settings import HubSpotSettings
from spe_core.adapter import Change
from spe_core.errors import AuthenticationFailed, BatchRejected
from spe_core.model import Role
from spe_core.testing import FakeClock

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
TOKEN = "pat-na1-writes-0000"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    clock = FakeClock(NOW)
    with EmulatorServer(clock=clock.now) as s:
        yield s


@pytest.fixture
def hs(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    server.portal.reset()
    server.requests.reset_counts()
    server.portal.add_token(TOKEN)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    return server


@pytest.fixture
def api(hs: EmulatorServer) -> Any:
    return HubSpot(access_token=TOKEN, host=hs.url, retry=Retry(total=0))


def _deal(hs: EmulatorServer, key: str) -> str:
    return hs.portal.create(
        "deals", {"dealname": key, "pipeline": "default", "spe_key": key, "spe_status": "queued"}
    )


def _status(hs: EmulatorServer, record_id: str) -> str | None:
    return (hs.portal.get("deals", record_id) or {}).get("spe_status")


def _refusal(info: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body = json.loads(info.value.body)
    assert body["status"] == "error" and body["correlationId"]
    return dict(body)


# --- the emulator, through the client ---------------------------------------------------------


def test_batch_update_with_one_invalid_input_writes_nothing(hs: EmulatorServer, api: Any) -> None:
    a, b = _deal(hs, "a"), _deal(hs, "b")
    batch = BatchInputSimplePublicObjectBatchInput(
        inputs=[
            {"id": a, "properties": {"spe_status": "released"}},
            {"id": b, "properties": {"spe_status": "Released"}},  # not an option
        ]
    )
    with pytest.raises(ApiException) as info:
        api.crm.objects.batch_api.update("deals", batch)
    assert info.value.status == 400
    body = _refusal(info)
    assert body["category"] == "VALIDATION_ERROR" and "Released" in body["message"]
    assert _status(hs, a) == _status(hs, b) == "queued"
    ok = api.crm.objects.batch_api.update(
        "deals", BatchInputSimplePublicObjectBatchInput(inputs=batch.inputs[:1])
    )
    assert type(ok).__name__ == "BatchResponseSimplePublicObject"
    assert ok.status == "COMPLETE" and [r.id for r in ok.results] == [a]
    assert _status(hs, a) == "released"


def test_batch_upsert_with_one_invalid_input_writes_nothing(hs: EmulatorServer, api: Any) -> None:
    existing = _deal(hs, "k1")
    inputs = [
        {"id": "k1", "idProperty": "spe_key", "properties": {"spe_status": "released"}},
        {"id": "k2", "idProperty": "spe_key", "properties": {"hubspot_owner_id": "999"}},
    ]
    with pytest.raises(ApiException) as info:
        api.crm.objects.batch_api.upsert(
            "deals", BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs)
        )
    assert info.value.status == 400 and "owner" in _refusal(info)["message"]
    assert _status(hs, existing) == "queued" and len(hs.portal.objects["deals"]) == 1
    done = api.crm.objects.batch_api.upsert(
        "deals", BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs[:1])
    )
    (result,) = done.results
    assert result.id == existing and result.new is False
    assert "spe_key" not in result.properties  # not echoed unless sent in properties


def test_batch_create_is_all_or_nothing_without_trace_ids_and_207_with_them(
    hs: EmulatorServer, api: Any
) -> None:
    good = {"properties": {"dealname": "good", "spe_key": "g1"}}
    bad = {"properties": {"dealname": "bad", "spe_score": "lots"}}
    with pytest.raises(ApiException) as info:
        api.crm.objects.batch_api.create(
            "deals", BatchInputSimplePublicObjectBatchInputForCreate(inputs=[good, bad])
        )
    assert info.value.status == 400 and "lots" in _refusal(info)["message"]
    partial = [dict(good, objectWriteTraceId="t-good"), bad]  # not on every input
    with pytest.raises(ApiException):
        api.crm.objects.batch_api.create(
            "deals", BatchInputSimplePublicObjectBatchInputForCreate(inputs=partial)
        )
    assert hs.portal.objects["deals"] == {}
    traced = [dict(good, objectWriteTraceId="t-good"), dict(bad, objectWriteTraceId="t-bad")]
    reply = api.crm.objects.batch_api.create(
        "deals", BatchInputSimplePublicObjectBatchInputForCreate(inputs=traced)
    )
    assert type(reply).__name__ == "BatchResponseSimplePublicObjectWithErrors"  # a 207
    assert reply.num_errors == 1
    assert reply.errors[0].category == "VALIDATION_ERROR"
    assert reply.errors[0].context == {"objectWriteTraceId": ["t-bad"]}
    (created,) = reply.results
    assert created.object_write_trace_id == "t-good"
    assert hs.portal.get("deals", created.id)["spe_key"] == "g1"  # type: ignore[index]
    again = api.crm.objects.batch_api.create(
        "deals", BatchInputSimplePublicObjectBatchInputForCreate(inputs=traced[:1])
    )
    assert again.errors[0].category == "CONFLICT"  # spe_key is unique: no second record
    assert len(hs.portal.objects["deals"]) == 1


def test_results_come_in_no_promised_order_from_a_settable_seed(
    hs: EmulatorServer, api: Any
) -> None:
    ids = [_deal(hs, f"k{i}") for i in range(20)]
    batch = BatchInputSimplePublicObjectBatchInput(
        inputs=[{"id": i, "properties": {"spe_score": "1"}} for i in ids]
    )

    def order(seed: int | None) -> list[str]:
        if seed is None:
            hs.portal.faults.shuffle_results = False
        else:
            hs.portal.faults.shuffle_results = True
            hs.portal.faults.order_rng = random.Random(seed)
        return [r.id for r in api.crm.objects.batch_api.update("deals", batch).results]

    assert order(None) == ids
    shuffled = order(3)
    assert sorted(shuffled) == sorted(ids) and shuffled != ids
    assert order(3) == shuffled  # deterministic for a seed


def test_replies_that_leave_inputs_out_or_say_processing(hs: EmulatorServer, api: Any) -> None:
    a, b = _deal(hs, "a"), _deal(hs, "b")
    batch = BatchInputSimplePublicObjectBatchInput(
        inputs=[{"id": i, "properties": {"spe_status": "released"}} for i in (a, b)]
    )
    hs.portal.faults.omit_from_replies = {b}
    reply = api.crm.objects.batch_api.update("deals", batch)
    assert [r.id for r in reply.results] == [a]
    assert _status(hs, b) == "released"  # written, just not answered
    hs.portal.faults.processing_replies = 1
    reply = api.crm.objects.batch_api.update("deals", batch)
    assert reply.status == "PROCESSING" and reply.results == []
    assert api.crm.objects.batch_api.update("deals", batch).status == "COMPLETE"


def test_tasks_and_meetings_need_hs_timestamp(hs: EmulatorServer, api: Any) -> None:
    basic = api.crm.objects.basic_api
    with pytest.raises(ApiException) as info:
        basic.create("tasks", SimplePublicObjectInputForCreate(properties={"hs_task_subject": "x"}))
    assert info.value.status == 400 and "hs_timestamp" in _refusal(info)["message"]
    task = basic.create(
        "tasks",
        SimplePublicObjectInputForCreate(
            properties={"hs_task_subject": "x", "hs_timestamp": "2026-01-06T09:00:00Z"}
        ),
    )
    assert type(task).__name__ == "SimplePublicObject" and task.id
    with pytest.raises(ApiException):
        basic.create(
            "meetings", SimplePublicObjectInputForCreate(properties={"hs_meeting_title": "m"})
        )
    start = "2026-01-06T10:00:00.000Z"
    meeting = basic.create(
        "meetings",
        SimplePublicObjectInputForCreate(
            properties={"hs_meeting_title": "m", "hs_meeting_start_time": start}
        ),
    )  # the documented default: hs_timestamp from hs_meeting_start_time
    assert hs.portal.get("meetings", meeting.id)["hs_timestamp"] == start  # type: ignore[index]
    reply = api.crm.objects.batch_api.create(
        "tasks",
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                {"properties": {"hs_timestamp": "1767690000000"}, "objectWriteTraceId": "1"},
                {"properties": {"hs_task_subject": "no due"}, "objectWriteTraceId": "2"},
            ]
        ),
    )
    assert [e.context for e in reply.errors] == [{"objectWriteTraceId": ["2"]}]


def test_single_create_patch_and_batch_archive(hs: EmulatorServer, api: Any) -> None:
    basic = api.crm.objects.basic_api
    created = basic.create(
        "deals", SimplePublicObjectInputForCreate(properties={"dealname": "one", "spe_key": "s1"})
    )
    assert created.properties["spe_key"] == "s1"
    with pytest.raises(ApiException) as info:
        basic.create("deals", SimplePublicObjectInputForCreate(properties={"spe_key": "s1"}))
    assert info.value.status == 409 and _refusal(info)["category"] == "CONFLICT"
    patched = basic.update(
        "deals", created.id, SimplePublicObjectInput(properties={"spe_status": "won"})
    )
    assert patched.properties["spe_status"] == "won"
    by_key = basic.update(
        "deals", "s1", SimplePublicObjectInput(properties={"spe_score": "5"}), id_property="spe_key"
    )
    assert by_key.id == created.id
    with pytest.raises(ApiException) as info:
        basic.update("deals", "424242", SimplePublicObjectInput(properties={}))
    assert info.value.status == 404
    other = _deal(hs, "s2")
    gone = api.crm.objects.batch_api.archive(
        "deals", BatchInputSimplePublicObjectId(inputs=[{"id": created.id}, {"id": other}])
    )
    assert gone is None  # 204, no body
    assert hs.portal.objects["deals"] == {}
    assert set(hs.portal.archived["deals"]) == {created.id, other}


# --- the adapter ------------------------------------------------------------------------------


def _adapter(hs: EmulatorServer, **kw: Any) -> HubSpotAdapter:
    settings = HubSpotSettings(host=hs.url, team_roles={r.value: r.value for r in Role})
    return HubSpotAdapter(settings, sleep=lambda s: None, clock=lambda: NOW, **kw)


def test_results_are_matched_by_id_and_trace_never_by_position(hs: EmulatorServer) -> None:
    hs.portal.faults.order_rng = random.Random(1)  # shuffled (the default), reproducibly
    ids = [_deal(hs, f"old-{i}") for i in range(40)]
    adapter = _adapter(hs)
    updates = [
        Change("opportunity", f"old-{i}", {"status": "released"}, d) for i, d in enumerate(ids)
    ]
    creates = [
        Change("opportunity", f"new-{i}", {"status": "queued", "account_id": f"Co {i}"})
        for i in range(40)
    ]
    results = adapter.write(updates + creates)
    assert all(r.ok for r in results)
    assert [r.crm_id for r in results[:40]] == ids
    for change, result in zip(creates, results[40:], strict=True):
        assert result.key == change.key
        assert (hs.portal.get("deals", result.crm_id or "") or {})["spe_key"] == change.key


def test_a_create_whose_key_exists_is_upserted_not_duplicated(hs: EmulatorServer) -> None:
    """A write that reached HubSpot but whose answer did not (a crash, a reply that left it
    out): the retry's create conflicts on the unique spe_key and is upserted instead."""
    adapter = _adapter(hs)
    changes = [
        Change("opportunity", f"n{i}", {"status": "queued", "account_id": "Co"}) for i in range(4)
    ]
    hs.portal.faults.omit_from_replies = {"n1", "n2"}
    first = adapter.write(changes)
    assert [r.ok for r in first] == [True, False, False, True]
    assert all(r.retryable for r in first[1:3])
    hs.portal.faults.omit_from_replies = set()
    again = adapter.write(changes[1:3])
    assert all(r.ok for r in again)
    assert len(hs.portal.objects["deals"]) == 4
    by_key = {p["spe_key"]: p["hs_object_id"] for p in hs.portal.all("deals")}
    assert [r.crm_id for r in again] == [by_key["n1"], by_key["n2"]]
    assert hs.requests.counts()["batch_upsert"] == 1


def test_a_processing_reply_is_a_retryable_failure_for_every_input(hs: EmulatorServer) -> None:
    a = _deal(hs, "a")
    hs.portal.faults.processing_replies = 1
    (result,) = _adapter(hs).write([Change("opportunity", "a", {"status": "won"}, a)])
    assert not result.ok and result.retryable and "PROCESSING" in (result.error or "")


def test_hs_timestamp_is_always_sent_for_new_tasks_and_meetings(hs: EmulatorServer) -> None:
    owner = hs.portal.add_owner("Cara", "Service", "cara@acme.example")
    adapter = _adapter(hs)
    task = Change(
        "task",
        "t1",
        {"status": "assigned", "owner": owner, "kind": "quote", "account_id": "Acme", "due": None},
    )
    start = datetime(2026, 1, 7, 9, tzinfo=UTC)
    booking = Change("booking", "b1", {"status": "booked", "owner": owner, "start": start})
    results = adapter.write([task])
    results = [*results, *adapter.write([booking])]
    assert all(r.ok for r in results), results
    stored_task = hs.portal.get("tasks", results[0].crm_id or "") or {}
    assert stored_task["hs_timestamp"] == "2026-01-05T12:00:00.000Z"  # the adapter's now
    stored = hs.portal.get("meetings", results[1].crm_id or "") or {}
    assert stored["hs_timestamp"] == "2026-01-07T09:00:00.000Z"


def test_a_refused_batch_names_the_crm_message_and_401_is_authentication(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _deal(hs, "a")
    adapter = _adapter(hs)
    with pytest.raises(BatchRejected) as info:
        adapter.write([Change("opportunity", "a", {"owner": "999"}, a)])
    assert "999 is not a valid owner id" in info.value.detail
    assert TOKEN not in str(info.value)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-revoked")
    with pytest.raises(AuthenticationFailed, match="401"):
        adapter.write([Change("opportunity", "a", {"status": "won"}, a)])


def test_write_faults_can_be_set_over_http(hs: EmulatorServer) -> None:
    import requests

    plain = requests.Session()
    plain.trust_env = False
    plain.post(
        f"{hs.url}/__emulator/faults",
        json={"results_seed": 4, "omit_from_replies": ["k1"], "processing_replies": 2},
    )
    faults = hs.portal.faults
    assert faults.omit_from_replies == {"k1"} and faults.processing_replies == 2
    assert faults.shuffle_results and faults.order_rng.random() == random.Random(4).random()
    plain.post(f"{hs.url}/__emulator/faults", json={"shuffle_results": False})
    assert not hs.portal.faults.shuffle_results


def test_bookings_are_upserted_by_key_one_call_each_time(hs: EmulatorServer) -> None:
    """The sync links only opportunities to their records: a booking's every change comes
    without a record id, and is one upsert by spe_key (never a create that conflicts)."""
    owner = hs.portal.add_owner("Fay", "Field", "fay@acme.example")
    adapter = _adapter(hs)
    start = datetime(2026, 1, 7, 9, tzinfo=UTC)
    for status in ("booked", "cancelled"):
        change = Change("booking", "b1", {"status": status, "owner": owner, "start": start})
        (result,) = adapter.write([change])
        assert result.ok
    (meeting,) = hs.portal.all("meetings")
    assert meeting["hs_meeting_outcome"] == "CANCELED" and meeting["spe_key"] == "b1"
    assert hs.requests.counts()["batch_upsert"] == 2
    assert hs.requests.counts()["batch_create"] == 0


@given(
    order=st.permutations(range(12)),
    left_out=st.sets(st.integers(0, 11)),
    stray=st.booleans(),
)
def test_any_reply_order_links_each_input_to_its_own_record_or_retries_it(
    order: list[int], left_out: set[int], stray: bool
) -> None:
    """Property: whatever the order of a batch reply's results, whichever it leaves out,
    and a result no input asked for, each input gets its own record or a retryable
    failure, never another input's record."""
    from spe_adapters.hubspot.adapter import _result, _results

    changes = [Change("opportunity", f"k{i}", {"status": "won"}, str(1000 + i)) for i in range(12)]
    results = [{"id": str(1000 + i), "properties": {}} for i in order if i not in left_out]
    if stray:
        results.insert(0, {"id": "999999", "properties": {}})
    reply = {"status": "COMPLETE", "results": results}
    done = {str(r["id"]): str(r["id"]) for r in _results(reply)}
    for i, change in enumerate(changes):
        result = _result(change, str(change.crm_id), done, {}, reply)
        if i in left_out:
            assert not result.ok and result.retryable
        else:
            assert result.ok and result.crm_id == change.crm_id
