"""The adapter contract suite, run on the in-memory reference CRM."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spe_core.testing import FakeClock
from spe_core.testing.adapter_contract import AdapterContract
from spe_core.testing.dictcrm import DictCrm, DictCrmAdapter


class DictCrmHarness:
    """Drives a DictCrm; ``adapter_class`` lets tests put a broken adapter behind it."""

    page_size = 3  # DictCrmAdapter reads in pages of three

    def __init__(self, adapter_class: type[DictCrmAdapter] = DictCrmAdapter) -> None:
        self.clock = FakeClock()
        self.crm = DictCrm(self.clock)
        self.adapter = adapter_class(self.crm)
        self._users = itertools.count(1)

    def add_user(self, name: str, role: str) -> str:
        crm_id = f"U{next(self._users)}"
        self.crm.add_user(crm_id, name, role)
        return crm_id

    def add_queued(self, account: str, tier: int, score: float) -> str:
        return self.crm.add_record(Account=account, Tier=tier, Score=score, Status="queued")

    def add_malformed(self) -> str:
        return self.crm.add_record(Account="", Status="queued")

    def read_back(self, crm_id: str) -> dict[str, Any]:
        r = self.crm.records[crm_id]
        return {"status": r.get("Status"), "owner": r.get("Owner"), "key": r.get("Key")}

    def edit_owner(self, crm_id: str, owner: str) -> None:
        self.crm.edit(crm_id, Owner=owner)

    def fail_next_writes(self, count: int) -> None:
        self.crm.transient_failures = count

    def fail_record(self, crm_id: str) -> None:
        self.crm.failing_keys[crm_id] = False

    def record_count(self) -> int:
        return len(self.crm.records)

    def delete_record(self, crm_id: str) -> None:
        self.crm.delete(crm_id)

    def add_with_status(self, account: str, status: str) -> str:
        return self.crm.add_record(Account=account, Status=status)


class TestDictCrmAdapterContract(AdapterContract):
    @pytest.fixture
    def harness(self) -> DictCrmHarness:
        return DictCrmHarness()


@given(
    minutes=st.lists(st.integers(0, 5), max_size=12),
    since=st.none() | st.integers(0, 6),
    deleted=st.sets(st.integers(0, 11)),
)
def test_the_reference_reads_every_record_modified_at_or_after_since(
    minutes: list[int], since: int | None, deleted: set[int]
) -> None:
    """DictCrmAdapter.read, the reference the suite is proved on: each record modified at
    or after ``since`` (deleted ones from the bin included) exactly once, in pages of at
    most three, in (modification time, id) order."""
    clock = FakeClock()
    start = clock.now()
    crm = DictCrm(clock)
    stamps: dict[str, int] = {}
    for i, minute in enumerate(minutes):
        clock.set(start + timedelta(minutes=minute))
        crm_id = crm.add_record(Account=f"a{i}", Status="queued")
        stamps[crm_id] = minute
        if i in deleted:
            crm.delete(crm_id)
            stamps[crm_id] = minute  # deleted at the same instant: its stamp stays
    at = None if since is None else start + timedelta(minutes=since)
    pages = list(DictCrmAdapter(crm).read("opportunities", at))
    got = [r for page in pages for r in page]
    assert all(1 <= len(page) <= 3 for page in pages)
    assert sorted(r.crm_id for r in got) == sorted(
        crm_id for crm_id, minute in stamps.items() if since is None or minute >= since
    )
    order = [(r.modified_at, r.crm_id) for r in got]
    assert order == sorted(order)
    assert {r.crm_id for r in got if DictCrmAdapter(crm).to_inbound(r).deleted} == {
        r.crm_id for r in got if r.crm_id in crm.recycle_bin
    }
