"""What a CRM record means for SPE: the rules the sync applies to each record it reads.

Pure: the stored opportunity, the mapped record and what the sync knows about
its own unwritten changes go in; a :class:`Decision` comes out. The sync
(:mod:`spe_core.sync`) carries the decision out through the engine.

The rules, for one opportunity record read from the CRM (``docs/sync.md``
states them for admins):

1. **Deleted** in the CRM: an opportunity still open in SPE (backlog, queued,
   released) is withdrawn; anything else is ignored.
2. **Unknown status**: a value of the SPE status
   field that is not an SPE status (see :data:`KNOWN_STATUSES`) is a
   configuration problem, not a decision SPE may guess: the record is
   quarantined with the value, the allowed values and where to fix it (the
   record's field in the CRM, or the adapter's status mapping in spe.toml).
   An empty field is not unknown: it means "not SPE's".
3. **New** to SPE: a record whose SPE status field says ``queued`` or
   ``backlog`` enters SPE's **backlog**; the next replenishment decides whether
   it enters the queue, so records marked queued in the CRM never push the
   queue past its target. Records with another SPE status, or none, are ignored
   (each ignored record carries its reason, counted in the sync report).
4. **Closed by a person**: an open opportunity whose SPE status field the CRM
   now shows as a closed state (an outcome, ``nurture``, ``expired``,
   ``withdrawn``) is withdrawn from SPE's flow, and a change of SPE's still on
   its way to that record is dropped, so it cannot overwrite the person's edit.
   (SPE never writes a closed status for an opportunity it holds open, so such a
   value can only be a person's.)
5. **Owner changed by a person**: a released opportunity whose CRM owner is no
   longer the member SPE released it to is a conflict (resolved by the sync's
   ``conflicts`` setting: the CRM wins by default). Not while SPE's own write is
   on its way, for the same reason.
6. **Tier or score changed**: a waiting (backlog or queued) opportunity takes the
   new tier and score and is re-ranked where it is (the engine re-scores a queued
   one through the scoring plugins, as at enqueue). Nothing else a person edits
   on a known record changes SPE's state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from spe_core.adapter import Inbound
from spe_core.model import Opportunity, OpportunityStatus, Outcome

__all__ = [
    "CLOSED_STATUSES",
    "KNOWN_STATUSES",
    "OPEN",
    "STATUS_MAPPING_FIX",
    "Action",
    "Decision",
    "decide_opportunity",
    "status_mapping_problems",
    "unknown_status_reason",
]

OPEN = frozenset({OpportunityStatus.BACKLOG, OpportunityStatus.QUEUED, OpportunityStatus.RELEASED})
"""Opportunity states still in SPE's flow."""

CLOSED_STATUSES = frozenset(
    {o.value for o in Outcome}
    | {
        OpportunityStatus.RESOLVED.value,
        OpportunityStatus.NURTURE.value,
        OpportunityStatus.EXPIRED.value,
        OpportunityStatus.WITHDRAWN.value,
    }
)
"""Values of the CRM's SPE status field that mean a person closed the record."""

KNOWN_STATUSES = frozenset({s.value for s in OpportunityStatus} | {o.value for o in Outcome})
"""Every value the CRM's SPE status field may hold (as the adapter maps it): SPE's
opportunity states and the outcomes."""

_ENTERS = frozenset({OpportunityStatus.QUEUED.value, OpportunityStatus.BACKLOG.value})


class Action(enum.StrEnum):
    """What the sync does with one record."""

    ADD = "add"
    """A new opportunity: into SPE's backlog."""
    RERANK = "rerank"
    """A waiting opportunity: apply the CRM's tier and score (re-ranks if they changed)."""
    WITHDRAW = "withdraw"
    """Deleted or closed by a person in the CRM: out of SPE's flow."""
    CONFLICT = "conflict"
    """A released opportunity's owner was changed by a person in the CRM."""
    UNCHANGED = "unchanged"
    """Nothing for SPE to change."""
    IGNORE = "ignore"
    """Not SPE's to track (never queued, or already out of the flow); the reason says which."""
    QUARANTINE = "quarantine"
    """SPE cannot tell what the record means (its status is not an SPE status): quarantined
    with the reason, nothing in SPE changes."""


@attrs.frozen
class Decision:
    """The rule's answer for one record, with the reason (for withdrawals, quarantines,
    the ignored counts of the sync report and logs). An ignored record's reason is a
    short fixed phrase (it is a key of ``StreamReport.ignored_reasons``)."""

    action: Action
    reason: str = ""


def decide_opportunity(
    known: Opportunity | None,
    inbound: Inbound,
    *,
    crm: str,
    owner_crm_id: str | None,
    spe_write_pending: bool,
) -> Decision:
    """Apply the rules above to one record.

    ``known`` is SPE's stored opportunity (None: new to SPE); ``owner_crm_id``
    the CRM id of the member SPE released it to; ``spe_write_pending`` whether a
    change of SPE's to this record is still on its way to the CRM.
    """
    if inbound.deleted:
        if known is not None and known.status in OPEN:
            return Decision(Action.WITHDRAW, f"it was deleted in {crm}")
        return Decision(Action.IGNORE, "deleted in the CRM, not in SPE's flow")
    status = inbound.crm_status or None
    if status is not None and status not in KNOWN_STATUSES:
        return Decision(Action.QUARANTINE, unknown_status_reason(status, crm))
    if known is None:
        if status in _ENTERS:
            return Decision(Action.ADD)
        if status is None:
            return Decision(Action.IGNORE, "new, no SPE status")
        return Decision(Action.IGNORE, f"new, SPE status {status!r} (not queued or backlog)")
    if known.status not in OPEN:
        return Decision(Action.UNCHANGED)
    if status in CLOSED_STATUSES:
        # SPE never writes a closed status for an opportunity it holds open, so this is a
        # person's edit even while a change of SPE's is on its way (which is dropped).
        return Decision(Action.WITHDRAW, f"its status was set to {status!r} in {crm}")
    if (
        not spe_write_pending
        and known.status is OpportunityStatus.RELEASED
        and inbound.crm_owner is not None
        and inbound.crm_owner != owner_crm_id
    ):
        return Decision(Action.CONFLICT, f"its owner was changed in {crm}")
    if known.status is not OpportunityStatus.RELEASED:
        return Decision(Action.RERANK)
    return Decision(Action.UNCHANGED)


def _allowed() -> str:
    return ", ".join(sorted(KNOWN_STATUSES))


def unknown_status_reason(value: str, crm: str) -> str:
    """Why a record whose SPE status field holds ``value`` (not an SPE status) is
    quarantined, and how an admin fixes it."""
    return (
        f"its SPE status {value!r} is not an SPE status (allowed: {_allowed()}). "
        f"Fix: set the record's SPE status field in {crm} to one of them, or map the value "
        f"to one in the adapter's status mapping in spe.toml (for Salesforce and HubSpot: "
        f"status_values under [adapter.{crm}.fields])."
    )


STATUS_MAPPING_FIX = (
    "map only SPE statuses (remove or rename the entry): every SPE status maps to the "
    "CRM value that stands for it."
)
"""The fix for each of :func:`status_mapping_problems`."""


def status_mapping_problems(status_values: Mapping[str, object], where: str) -> list[str]:
    """The entries of an adapter's status mapping (SPE status -> CRM value) whose SPE
    side is not an SPE status; ``where`` names the table (for the messages). Records
    holding such a CRM value would be quarantined at every sync."""
    return [
        f"{where} maps {key!r}, which is not an SPE status (allowed: {_allowed()}); "
        f"records with the CRM value {value!r} would be quarantined at every sync"
        for key, value in sorted(status_values.items(), key=lambda kv: str(kv[0]))
        if str(key) not in KNOWN_STATUSES
    ]
