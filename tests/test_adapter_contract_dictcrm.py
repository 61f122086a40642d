"""The adapter contract suite, run on the in-memory reference CRM."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

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
