"""The pull queue: Promotions fill the backlog, replenishment tops up the queue,
salespeople pull, resolve and give back; sweeps apply the time-based rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import attrs

from spe_core import codec, model, queue
from spe_core.engine.base import EngineBase, once
from spe_core.engine.unit import UnitOfWork
from spe_core.errors import InvalidValue
from spe_core.events import (
    OpportunityBacklogged,
    OpportunityLinked,
    QueueReplenished,
    QueueTargetChanged,
)
from spe_core.model import Opportunity, OpportunityStatus, Outcome
from spe_core.operations import RETENTION, check_operation_id
from spe_core.queue import Zone

__all__ = ["PullResult", "QueuePart", "QueueStatus", "ReplenishResult", "SweepResult"]


def _request(*args: object) -> str:
    """A call's arguments as canonical JSON (what an operation id is checked against)."""
    return json.dumps(args, separators=(",", ":"), ensure_ascii=False)


def _request_for(operation_id: str | None, *args: object) -> str:
    """:func:`_request`, needed only with a caller-supplied operation id ("" without)."""
    return "" if operation_id is None else _request(*args)


@codec.register_value
@attrs.frozen
class PullResult:
    """What a pull released, and why it released fewer than asked (if it did)."""

    member_id: str
    requested: int
    released: tuple[Opportunity, ...]
    reason: str | None = None

    @property
    def opportunity(self) -> Opportunity | None:
        """The first released opportunity, or None."""
        return self.released[0] if self.released else None


@attrs.frozen
class ReplenishResult:
    """The morning top-up: the plan and the opportunities it moved."""

    plan: queue.ReplenishmentPlan
    moved: tuple[Opportunity, ...]


@attrs.frozen
class QueueStatus:
    """The buffer at a glance: level against target, zone, oldest item."""

    level: int
    target: int
    zone: Zone
    backlog: int
    released: int
    oldest_queued_at: datetime | None
    shortfall: int


@attrs.frozen
class SweepResult:
    """What a sweep changed: leases expired, stale and expired opportunities."""

    lease_expired: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()


class QueuePart(EngineBase):
    """Filling the queue, pulling, resolving, sweeping and reading the buffer."""

    TARGET_KEY = "queue:target"

    # --- filling the queue ------------------------------------------------------------

    def _check_new(self, u: UnitOfWork, opp: Opportunity) -> None:
        existing = u.get_or_lock("opportunity", opp.id, u.tx.get_opportunity)
        if existing is not None:
            raise InvalidValue(
                f"opportunity {opp.id!r} is already known ({existing.status.value}).",
                "use a new id; the queue never holds an opportunity twice.",
            )

    def _check_all_new(self, u: UnitOfWork, opportunities: Iterable[Opportunity]) -> None:
        """:meth:`_check_new` for each, and no id given twice."""
        ids: set[str] = set()
        for opp in opportunities:
            if opp.id in ids:
                raise InvalidValue(
                    f"opportunity {opp.id!r} is given twice.",
                    "give each opportunity once; the queue never holds an opportunity twice.",
                )
            ids.add(opp.id)
            self._check_new(u, opp)

    @once
    def add_to_backlog(self, opportunities: Iterable[Opportunity]) -> list[Opportunity]:
        """Promotions' produced opportunities wait in the backlog for replenishment.

        Returns the opportunities added, as stored. An opportunity without
        ``queued_at`` is stamped with the engine clock's ``now``.
        """
        opportunities = model.check_items(opportunities, Opportunity, "opportunities")
        with self.unit() as u:
            self._check_all_new(u, opportunities)
            return self._backlog(u, opportunities)

    def _backlog(self, u: UnitOfWork, opportunities: Iterable[Opportunity]) -> list[Opportunity]:
        """Store ``opportunities``, known to be new (checked, or looked up and locked by
        this unit), in the backlog; the bulk path of :meth:`add_to_backlog`. An
        opportunity already in the backlog with its ``queued_at`` (as the sync maps a CRM
        record) is stored as it is, not copied."""
        order = self.policy.order
        added: list[Opportunity] = []
        put, record, now = u.tx.put_opportunity, u.record, u.now
        for opp in opportunities:
            backlog = opp
            if opp.status is not OpportunityStatus.BACKLOG or opp.queued_at is None:
                backlog = attrs.evolve(
                    opp, status=OpportunityStatus.BACKLOG, queued_at=opp.queued_at or now
                )
            put(backlog, queue.rank_key(backlog, order))
            record(OpportunityBacklogged(at=now, opportunity=backlog))
            added.append(backlog)
        return added

    @once
    def enqueue(self, opportunities: Iterable[Opportunity]) -> list[Opportunity]:
        """Put opportunities straight into the queue (scored by the plugins now).

        Returns the opportunities queued, as stored. An opportunity without
        ``queued_at`` is stamped with the engine clock's ``now``.
        """
        opportunities = model.check_items(opportunities, Opportunity, "opportunities")
        queued: list[Opportunity] = []
        order = self.policy.order
        with self.unit() as u:
            self._check_all_new(u, opportunities)
            stamped = [  # stamped before the scoring plugins see them
                opp if opp.queued_at is not None else attrs.evolve(opp, queued_at=u.now)
                for opp in opportunities
            ]
            for opp, score in zip(stamped, self.plugins.scores(stamped, u.now), strict=True):
                step = queue.enter_queue(opp, u.now, score, from_backlog=False)
                u.tx.put_opportunity(step.opportunity, queue.rank_key(step.opportunity, order))
                u.record(step.event)
                queued.append(step.opportunity)
        return queued

    @once
    def replenish(self) -> ReplenishResult:
        """The morning top-up: move the best backlog items into the queue, up to target."""
        moved: list[Opportunity] = []
        order = self.policy.order
        with self.unit() as u:
            tx, now = u.tx, u.now
            level = tx.count(OpportunityStatus.QUEUED)
            available = tx.count(OpportunityStatus.BACKLOG)
            plan = queue.plan_replenishment(level, available, self.policy)
            if plan.to_move:
                picked = []
                for opp in tx.iter_ranked(OpportunityStatus.BACKLOG):
                    if queue.is_expired(opp, now):
                        continue
                    picked.append(opp)
                    if len(picked) == plan.to_move:
                        break
                for opp, score in zip(picked, self.plugins.scores(picked, now), strict=True):
                    step = queue.enter_queue(opp, now, score, from_backlog=True)
                    tx.put_opportunity(step.opportunity, queue.rank_key(step.opportunity, order))
                    u.record(step.event)
                    moved.append(step.opportunity)
                if len(picked) < plan.to_move:  # expired backlog items could not move
                    plan = queue.plan_replenishment(level, len(picked), self.policy)
            u.record(
                QueueReplenished(
                    at=now,
                    moved=len(moved),
                    level_before=plan.level_before,
                    level_after=plan.level_after,
                    target=plan.target,
                    zone=plan.zone_after.value,
                    shortfall=plan.shortfall,
                )
            )
        return ReplenishResult(plan, tuple(moved))

    def stored_target(self) -> int | None:
        """The target buffer management last set (None: the configured one stands)."""
        with self.unit() as u:
            value = u.tx.get_meta(self.TARGET_KEY)
        return None if value is None else int(value)

    def use_stored_target(self) -> None:
        """Adopt the target buffer management last set, if any."""
        target = self.stored_target()
        if target is not None and target != self.policy.target:
            self.policy = attrs.evolve(self.policy, target=target)

    @once
    def set_target(self, target: int, reason: str) -> None:
        """Change the queue's target (buffer management), recorded with its reason."""
        model.check_text(reason, "reason")
        previous = self.policy.target
        new_policy = attrs.evolve(self.policy, target=target)
        with self.unit() as u:
            u.tx.set_meta(self.TARGET_KEY, str(target))
            u.record(QueueTargetChanged(at=u.now, previous=previous, target=target, reason=reason))
        self.policy = new_policy

    # --- pulling and resolving --------------------------------------------------------

    @once
    def pull(
        self, member_id: str, count: int = 1, *, operation_id: str | None = None
    ) -> PullResult:
        """Release up to ``count`` of the best eligible opportunities to the member.

        Raises :class:`~spe_core.errors.RoleMayNotPull` for a role that may not
        pull; returns an empty result with the reason when the member is at
        their WIP limit or daily cap, or nothing eligible is queued.

        ``operation_id`` (an idempotency key: a UUID, say) makes a retried call safe:
        called again with the same id, ``pull`` returns the first call's result and
        releases nothing more (see :mod:`spe_core.operations`).
        """
        model.check_id(member_id, "member_id")
        model.check_int(count, "count", minimum=1, maximum=10_000)
        if operation_id is not None:
            check_operation_id(operation_id)
        request = _request_for(operation_id, member_id, count)
        policy = self.policy
        released: list[Opportunity] = []
        with self.unit(operation_id) as u:
            done = self._done_before(u, operation_id, "pull", request)
            if done is not None:
                return codec.from_json(done, PullResult)
            tx, now = u.tx, u.now
            expect_pull: Callable[[], None] | None = getattr(tx, "expect_pull", None)
            if expect_pull is not None:  # a store hook: the candidates come with the member
                expect_pull()
            member = self._member(tx, member_id)
            day = queue.pull_day(member, now)
            allowance = queue.pull_allowance(
                member,
                policy,
                held=tx.held_by(member_id),
                pulled_today=tx.pulls_on(member_id, day),
                requested=count,
            )
            reason = allowance.reason
            if allowance.count:
                deadline = queue.lease_deadline(now, policy)
                eligible, release, put = queue.is_eligible, queue._release, tx.put_opportunity
                for opp in tx.iter_ranked(OpportunityStatus.QUEUED):
                    if not eligible(opp, member, now):
                        continue
                    step = release(opp, member_id, now, deadline)  # eligible: checked above
                    put(step.opportunity)
                    u.record(step.event)
                    released.append(step.opportunity)
                    if len(released) == allowance.count:
                        break
                if released:
                    tx.add_pulls(member_id, day, len(released))
                if len(released) < allowance.count:
                    reason = "no more eligible opportunities in the queue"
            result = PullResult(member_id, count, tuple(released), reason)
            self._remember(u, operation_id, "pull", request, result)
        return result

    def _transition(
        self,
        opportunity_id: str,
        decide: Callable[[Opportunity, datetime], queue.Transition],
        operation: tuple[str | None, str, str] = (None, "", ""),
    ) -> Opportunity:
        """Apply one rule to one opportunity: read, decide, write, record. ``operation``
        is the caller's operation id, the call's kind and its arguments (JSON)."""
        operation_id, kind, request = operation
        if operation_id is not None:
            check_operation_id(operation_id)
        with self.unit(operation_id) as u:
            done = self._done_before(u, operation_id, kind, request)
            if done is not None:
                return codec.from_json(done, Opportunity)
            step = decide(self._opportunity(u.tx, opportunity_id), u.now)
            u.tx.put_opportunity(step.opportunity)
            u.record(step.event)
            self._remember(u, operation_id, kind, request, step.opportunity)
        return step.opportunity

    @once
    def resolve(
        self,
        opportunity_id: str,
        member_id: str,
        outcome: Outcome | str,
        *,
        operation_id: str | None = None,
    ) -> Opportunity:
        """The holder closes an opportunity with an outcome. With ``operation_id``, a
        retried call returns the first call's result (see :meth:`pull`)."""
        model.check_id(opportunity_id, "opportunity_id")
        model.check_id(member_id, "member_id")
        outcome = model.to_outcome(outcome)
        return self._transition(
            opportunity_id,
            lambda opp, now: queue.resolve(opp, member_id, outcome, now),
            (
                operation_id,
                "resolve",
                _request_for(operation_id, opportunity_id, member_id, outcome.value),
            ),
        )

    @once
    def give_back(
        self,
        opportunity_id: str,
        member_id: str,
        reason: str = "",
        *,
        operation_id: str | None = None,
    ) -> Opportunity:
        """The holder gives an opportunity back; it is queued again, never to them. With
        ``operation_id``, a retried call returns the first call's result."""
        model.check_id(opportunity_id, "opportunity_id")
        model.check_id(member_id, "member_id")
        model.check_text(reason, "reason")
        return self._transition(
            opportunity_id,
            lambda opp, now: queue.give_back(opp, member_id, now, reason),
            (
                operation_id,
                "give_back",
                _request_for(operation_id, opportunity_id, member_id, reason),
            ),
        )

    @once
    def withdraw(
        self, opportunity_id: str, reason: str, *, operation_id: str | None = None
    ) -> Opportunity:
        """Take an opportunity out of SPE's flow (a person changed it in the CRM). With
        ``operation_id``, a retried call returns the first call's result."""
        model.check_id(opportunity_id, "opportunity_id")
        model.check_text(reason, "reason")
        return self._transition(
            opportunity_id,
            lambda opp, now: queue.withdraw(opp, now, reason),
            (operation_id, "withdraw", _request_for(operation_id, opportunity_id, reason)),
        )

    @once
    def rerank(self, opportunity_id: str, *, tier: int, score: float) -> Opportunity | None:
        """A waiting (backlog or queued) opportunity takes a new tier and base score, as a
        person set them in the CRM; returns it re-ranked, or None when nothing changed.

        A queued opportunity's score goes through the scoring plugins again, as it did
        when it entered the queue; a backlog one keeps the base score until then.
        """
        model.check_id(opportunity_id, "opportunity_id")
        model.check_int(tier, "tier")
        score = model.check_number(score, "score")
        with self.unit() as u:
            opp = self._opportunity(u.tx, opportunity_id)
            return self._rerank(u, [(opp, tier, score)])[0]

    def _rerank(
        self, u: UnitOfWork, changes: Sequence[tuple[Opportunity, int, float]]
    ) -> list[Opportunity | None]:
        """:meth:`rerank` for a page of ``(stored opportunity, tier, base score)``, checked
        already: the queued ones are scored in one call of the scoring plugins."""
        order = self.policy.order
        queued = [
            attrs.evolve(opp, tier=tier, score=score)
            for opp, tier, score in changes
            if opp.status is OpportunityStatus.QUEUED
        ]
        rescored = iter(self.plugins.scores(queued, u.now))
        out: list[Opportunity | None] = []
        for opp, tier, score in changes:
            if opp.status is OpportunityStatus.QUEUED:
                score = next(rescored)
            step = queue.rerank(opp, tier, score, u.now)
            if step is None:
                out.append(None)
                continue
            u.tx.put_opportunity(step.opportunity, queue.rank_key(step.opportunity, order))
            u.record(step.event)
            out.append(step.opportunity)
        return out

    @once
    def link(self, opportunity_id: str, crm: str, crm_id: str) -> bool:
        """Record ``crm_id`` as the opportunity's record id in ``crm`` (the CRM named it on
        a write); returns False when it was known already."""
        model.check_id(opportunity_id, "opportunity_id")
        model.check_id(crm, "crm")
        model.check_id(crm_id, "crm_id")
        with self.unit() as u:
            opp = u.tx.get_opportunity(opportunity_id)
            if opp is None or opp.external_id(crm) == crm_id:
                return False
            ids = dict(opp.external_ids)
            ids[crm] = crm_id
            u.tx.put_opportunity(attrs.evolve(opp, external_ids=ids))
            u.record(OpportunityLinked(at=u.now, opportunity_id=opp.id, crm=crm, crm_id=crm_id))
        return True

    # --- sweeps -----------------------------------------------------------------------

    @once
    def expire_leases(self) -> tuple[str, ...]:
        """Send every opportunity whose lease ran out back to the queue."""
        ids: list[str] = []
        with self.unit() as u:
            u.tx.forget_operations(u.now - RETENTION)  # retried calls older than that act again
            for opp in list(u.tx.iter_lease_expired(u.now)):
                step = queue.expire_lease(opp, u.now)
                u.tx.put_opportunity(step.opportunity)
                u.record(step.event)
                ids.append(opp.id)
        return tuple(ids)

    @once
    def retire_stale(self) -> SweepResult:
        """Expire opportunities past ``expires_at`` and send stale ones to nurture."""
        policy = self.policy
        expired: list[str] = []
        stale: list[str] = []
        with self.unit() as u:
            tx, now = u.tx, u.now
            for opp in list(tx.iter_expiring(now)):
                step = queue.expire(opp, now)
                tx.put_opportunity(step.opportunity)
                u.record(step.event)
                expired.append(opp.id)
            if policy.stale_age is not None:
                for opp in list(tx.iter_queued_before(now - policy.stale_age)):
                    step = queue.retire_stale(opp, now, policy)
                    tx.put_opportunity(step.opportunity)
                    u.record(step.event)
                    stale.append(opp.id)
        return SweepResult(stale=tuple(stale), expired=tuple(expired))

    def sweep(self) -> SweepResult:
        """Run every time-based rule once: leases, expiry, staleness."""
        leases = self.expire_leases()
        rest = self.retire_stale()
        return attrs.evolve(rest, lease_expired=leases)

    # --- reading ----------------------------------------------------------------------

    def queue_status(self) -> QueueStatus:
        """Level, target, zone, backlog and the oldest queued item."""
        with self.unit() as u:
            tx = u.tx
            level = tx.count(OpportunityStatus.QUEUED)
            oldest = tx.oldest(OpportunityStatus.QUEUED)
            backlog = tx.count(OpportunityStatus.BACKLOG)
            released = tx.count(OpportunityStatus.RELEASED)
        target = self.policy.target
        return QueueStatus(
            level=level,
            target=target,
            zone=queue.buffer_zone(level, target, self.policy),
            backlog=backlog,
            released=released,
            oldest_queued_at=None if oldest is None else oldest.queued_at,
            shortfall=max(0, target - level),
        )

    def opportunity(self, opportunity_id: str) -> Opportunity:
        """The opportunity with ``opportunity_id`` (:class:`UnknownOpportunity` if none)."""
        model.check_id(opportunity_id, "opportunity_id")
        with self.unit() as u:
            return self._opportunity(u.tx, opportunity_id)

    def held_by(self, member_id: str) -> list[Opportunity]:
        """The opportunities ``member_id`` holds, by id."""
        model.check_id(member_id, "member_id")
        return [
            o
            for o in self.store.opportunities(OpportunityStatus.RELEASED)
            if o.owner_id == member_id
        ]
