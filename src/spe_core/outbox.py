"""The transactional outbox: values and pure rules for outbound CRM writes.

Every change the CRM must hear about is an :class:`OutboxItem`, staged from
the event log in one store transaction (so the outbox is exactly as durable
as the state change), coalesced per record (only the latest values travel),
delivered in the vendor's largest batch, deleted only on the CRM's
per-record success, retried with exponential backoff and jitter, and
quarantined with its reason after repeated permanent failures.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from spe_core.adapter import Change, ChangeKind, WriteResult
from spe_core.errors import ConfigError
from spe_core.model import aware_field, check_int, check_number

__all__ = [
    "OutboxItem",
    "OutboxStatus",
    "Quarantined",
    "RetryPolicy",
    "after_failure",
    "backoff_seconds",
    "merge",
]


class OutboxStatus(enum.StrEnum):
    """An outbox item waits to be delivered, or was given up on."""

    PENDING = "pending"
    QUARANTINED = "quarantined"


def _pairs(value: Mapping[str, Any] | tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    return (
        tuple(sorted(value.items()))
        if isinstance(value, Mapping)
        else tuple((str(k), v) for k, v in value)
    )


@attrs.frozen
class OutboxItem:
    """One record's pending CRM write (latest values win)."""

    adapter: str
    kind: ChangeKind = attrs.field(converter=ChangeKind)
    key: str
    values: tuple[tuple[str, Any], ...] = attrs.field(converter=_pairs)
    seq: int
    crm_id: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = attrs.field(default=None, validator=aware_field)
    last_error: str | None = None
    status: OutboxStatus = attrs.field(default=OutboxStatus.PENDING, converter=OutboxStatus)

    def change(self) -> Change:
        """The :class:`~spe_core.adapter.Change` the adapter writes."""
        return Change(self.kind, self.key, self.values, self.crm_id)


@attrs.frozen
class Quarantined:
    """A record the sync gave up on, with the reason a person can act on."""

    adapter: str
    direction: str  # "inbound" or "outbound"
    stream: str  # inbound stream or outbound change kind
    key: str  # CRM id (inbound) or SPE key (outbound)
    reason: str
    at: datetime = attrs.field(validator=aware_field)
    raw: str = ""


_MAX_DELAY_SECONDS = 30 * 86_400.0  # a month: longer delays are a mistake


def _delay(value: object, name: str) -> float:
    seconds = check_number(
        value,
        f"RetryPolicy.{name}",
        positive=True,
        error=ConfigError,
        fix=f"give {name} as a number of seconds above 0 and at most {_MAX_DELAY_SECONDS:.0f}.",
    )
    if seconds > _MAX_DELAY_SECONDS:
        raise ConfigError(
            f"RetryPolicy.{name} {seconds} seconds is longer than 30 days.",
            f"give {name} as at most {_MAX_DELAY_SECONDS:.0f} seconds.",
        )
    return seconds


def _base_seconds(value: object) -> float:
    return _delay(value, "base_seconds")


def _cap_seconds(value: object) -> float:
    return _delay(value, "cap_seconds")


def _attempts(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_int(
        value,
        f"RetryPolicy.{attribute.name}",
        minimum=1,
        maximum=10_000,
        error=ConfigError,
        fix=f"set {attribute.name} to a whole number from 1 to 10000.",
    )


@attrs.frozen
class RetryPolicy:
    """How often and how patiently outbound writes are retried."""

    base_seconds: float = attrs.field(default=1.0, converter=_base_seconds)
    cap_seconds: float = attrs.field(default=300.0, converter=_cap_seconds)
    max_permanent_failures: int = attrs.field(default=3, validator=_attempts)
    max_transient_attempts: int = attrs.field(default=8, validator=_attempts)


def merge(existing: OutboxItem | None, new: OutboxItem) -> OutboxItem:
    """Coalesce a newly staged change into the pending item for the same record.

    Later values override earlier ones; the item keeps its first sequence
    number (its place in line) and its CRM id; failures are forgiven because
    the values changed. A quarantined item is revived by new values.
    """
    if existing is None:
        return new
    values = dict(existing.values)
    values.update(dict(new.values))
    return attrs.evolve(
        existing,
        values=values,
        crm_id=new.crm_id or existing.crm_id,
        attempts=0,
        next_attempt_at=None,
        last_error=None,
        status=OutboxStatus.PENDING,
    )


def backoff_seconds(
    attempt: int, policy: RetryPolicy, jitter: float, retry_after: float | None = None
) -> float:
    """Delay before try number ``attempt + 1``: full-jitter exponential backoff.

    ``jitter`` is a number in [0, 1) the caller draws (so this stays pure);
    ``retry_after``, when the CRM sent one, is a floor.
    """
    ceiling = min(policy.cap_seconds, policy.base_seconds * float(2 ** max(0, attempt - 1)))
    delay = ceiling * (0.5 + jitter / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def after_failure(
    item: OutboxItem, result: WriteResult, now: datetime, policy: RetryPolicy, jitter: float
) -> OutboxItem:
    """The item after a per-record failure: retried later, or quarantined."""
    attempts = item.attempts + 1
    if not result.retryable and attempts >= policy.max_permanent_failures:
        return attrs.evolve(
            item,
            attempts=attempts,
            last_error=result.error,
            status=OutboxStatus.QUARANTINED,
            next_attempt_at=None,
        )
    delay = backoff_seconds(attempts, policy, jitter)
    return attrs.evolve(
        item,
        attempts=attempts,
        last_error=result.error,
        next_attempt_at=now + timedelta(seconds=delay),
    )
