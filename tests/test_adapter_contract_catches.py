"""The adapter contract suite catches real mistakes: each deliberately broken variant
of the reference adapter fails the case that covers its mistake, with a message that
says what the adapter did and what the contract requires (and passes the others)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from datetime import datetime

import attrs
import pytest

from spe_core.adapter import Change, Inbound, SourceRecord, WriteResult
from spe_core.errors import TransientError
from spe_core.testing.adapter_contract import (
    UNKNOWN_STATUS,
    AdapterContract,
    ContractViolation,
    contract_rig,
)
from spe_core.testing.dictcrm import DictCrmAdapter
from tests.test_adapter_contract_dictcrm import DictCrmHarness

CASES = sorted(name for name in dir(AdapterContract) if name.startswith("test_"))


class ReadsAfterTheBookmark(DictCrmAdapter):
    """Compares with ``>`` where the contract says ``>=``."""

    def read(self, stream: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
        for page in super().read(stream, since):
            kept = [r for r in page if since is None or r.modified_at > since]
            if kept:
                yield kept


class ForgetsExternalIds(DictCrmAdapter):
    """Maps opportunities without ``external_ids={name: crm_id}``."""

    def to_inbound(self, record: SourceRecord) -> Inbound:
        inbound = super().to_inbound(record)
        if record.stream != "opportunities":
            return inbound
        return attrs.evolve(inbound, value=attrs.evolve(inbound.value, external_ids={}))


class ReadsTheFirstPageOnly(DictCrmAdapter):
    """Never follows the next-page cursor."""

    def read(self, stream: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
        yield from itertools.islice(super().read(stream, since), 1)


class PagesByOffset(DictCrmAdapter):
    """Asks the CRM again for every page, by offset into a live, changing result."""

    def read(self, stream: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
        offset = 0
        while True:
            live = [r for page in super().read(stream, since) for r in page]
            page = live[offset : offset + 3]
            if not page:
                return
            yield page
            offset += len(page)


class IgnoresDeletes(DictCrmAdapter):
    """Reads the recycle bin but never says a record was deleted."""

    def to_inbound(self, record: SourceRecord) -> Inbound:
        return attrs.evolve(super().to_inbound(record), deleted=False)


class HidesUnknownStatuses(DictCrmAdapter):
    """Turns a status it does not know into None (the sync then ignores the record)."""

    def to_inbound(self, record: SourceRecord) -> Inbound:
        inbound = super().to_inbound(record)
        if inbound.crm_status == UNKNOWN_STATUS:
            return attrs.evolve(inbound, crm_status=None)
        return inbound


class DropsTheOwner(DictCrmAdapter):
    """Writes the status but not the owner."""

    def write(self, changes: Sequence[Change]) -> Sequence[WriteResult]:
        without = [
            attrs.evolve(c, values={k: v for k, v in c.data.items() if k != "owner"})
            for c in changes
        ]
        return super().write(without)


class CreatesInsteadOfUpdating(DictCrmAdapter):
    """Ignores the CRM id and the SPE key: every write creates a record."""

    def write(self, changes: Sequence[Change]) -> Sequence[WriteResult]:
        return super().write(
            [attrs.evolve(c, key=f"{c.key}-{self.crm.calls}", crm_id=None) for c in changes]
        )


class ReportsRateLimitsPerRecord(DictCrmAdapter):
    """Answers a rate limit of the whole call with permanent per-record failures."""

    def write(self, changes: Sequence[Change]) -> Sequence[WriteResult]:
        try:
            return super().write(changes)
        except TransientError:
            return [WriteResult(c.key, False, error="429") for c in changes]


def outcomes(adapter_class: type[DictCrmAdapter]) -> dict[str, str]:
    """Every case of the suite run on a harness over ``adapter_class``: the failing
    cases and their messages (the passing ones are left out)."""
    failed: dict[str, str] = {}
    for case in CASES:
        with contract_rig(DictCrmHarness(adapter_class)) as rig:
            try:
                getattr(AdapterContract(), case)(rig)
            except ContractViolation as exc:
                failed[case] = str(exc)
    return failed


def test_the_reference_adapter_passes_every_case() -> None:
    assert outcomes(DictCrmAdapter) == {}


@pytest.mark.parametrize(
    ("adapter_class", "case", "did", "requires"),
    [
        (
            ReadsAfterTheBookmark,
            "test_read_includes_records_modified_at_the_bookmark_instant",
            r"left out \['U1', 'U2'\], modified exactly at that instant: the adapter "
            r"compares with '>' instead of '>='",
            "returns records modified AT OR AFTER since",
        ),
        (
            ForgetsExternalIds,
            "test_every_mapped_value_carries_its_crm_id",
            r"mapped opportunities record 'R000001' onto a Opportunity whose external id "
            r"under 'dictcrm' is None",
            r"external_ids=\{adapter.name: record.crm_id\}",
        ),
        (
            ForgetsExternalIds,
            "test_members_and_queued_records_come_in",
            "came in as opportunities without their CRM id",
            r"external_ids=\{adapter.name: record.crm_id\}",
        ),
        (
            ReadsTheFirstPageOnly,
            "test_every_page_is_read",
            r"one sync of 7 queued records \(more than two pages of 3\) read 3",
            "yields every page: follow the CRM's next-page cursor",
        ),
        (
            PagesByOffset,
            "test_a_record_edited_during_a_read_is_not_lost",
            r"record \['R000001'\] was edited in the CRM while the sync paged through "
            r"opportunities; .* the records \['R000004'\] never came in",
            "never by offset into a live result",
        ),
        (
            IgnoresDeletes,
            "test_deleted_records_leave_the_flow",
            "was deleted while SPE held it released; after a sync it is still released",
            r"maps them with Inbound\(value, deleted=True\)",
        ),
        (
            HidesUnknownStatuses,
            "test_an_unknown_status_is_passed_through",
            "holds 'on_hold_by_legal' was mapped with crm_status=None",
            "passes the status it does not know through unchanged in Inbound.crm_status",
        ),
        (
            DropsTheOwner,
            "test_owner_and_status_go_out_exactly",
            r"is released to the CRM user 'U\d', but the CRM record's owner is None",
            r"sets the record's owner to Change.data\['owner'\]",
        ),
        (
            CreatesInsteadOfUpdating,
            "test_reruns_never_duplicate_records",
            r"the CRM held 6 opportunity records; after six syncs it holds \d+",
            "writes are upserts",
        ),
        (
            ReportsRateLimitsPerRecord,
            "test_transient_failures_are_retried",
            r"with the next 2 write calls failing transiently, the sync retried 0 times",
            "write\\(\\) raises TransientError",
        ),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else (v if v.startswith("test_") else ""),
)
def test_a_broken_adapter_fails_the_case_that_covers_its_mistake(
    adapter_class: type[DictCrmAdapter], case: str, did: str, requires: str
) -> None:
    failed = outcomes(adapter_class)
    assert case in failed, f"{adapter_class.__name__} passed {case}; failures: {failed}"
    message = failed[case]
    assert re.search(did, message), message
    assert "The adapter contract requires: " in message
    assert re.search(requires, message.split("requires: ", 1)[1]), message


def test_the_bookmark_and_paging_mistakes_fail_only_their_own_case() -> None:
    """The mistakes the old suite let through entirely fail exactly one case each."""
    assert set(outcomes(ReadsAfterTheBookmark)) == {
        "test_read_includes_records_modified_at_the_bookmark_instant"
    }
    assert set(outcomes(PagesByOffset)) == {"test_a_record_edited_during_a_read_is_not_lost"}
    assert set(outcomes(HidesUnknownStatuses)) == {"test_an_unknown_status_is_passed_through"}
    assert set(outcomes(IgnoresDeletes)) == {"test_deleted_records_leave_the_flow"}


class WithoutCapabilities(DictCrmHarness):
    page_size = None  # type: ignore[assignment]
    delete_record = None  # type: ignore[assignment]
    add_with_status = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("case", "capability"),
    [
        ("test_every_page_is_read", "page_size"),
        ("test_a_record_edited_during_a_read_is_not_lost", "page_size"),
        ("test_deleted_records_leave_the_flow", "delete_record"),
        ("test_an_unknown_status_is_passed_through", "add_with_status"),
    ],
)
def test_a_case_needing_a_missing_capability_is_skipped_with_the_reason(
    case: str, capability: str
) -> None:
    skipped = pytest.raises(pytest.skip.Exception, match=f"the harness has no {capability}")
    with contract_rig(WithoutCapabilities()) as rig, skipped:
        getattr(AdapterContract(), case)(rig)
