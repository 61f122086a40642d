"""What every part of the engine shares: the store, the clock, the plugins, the policies
and the unit of work every operation runs in."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from spe_core import calendar, codec, model, routing
from spe_core.clock import Clock, SystemClock
from spe_core.engine.unit import UnitOfWork, UnitRunner
from spe_core.errors import (
    InvalidValue,
    NotCommitted,
    StoreError,
    UnknownMember,
    UnknownOpportunity,
)
from spe_core.events import Recorded
from spe_core.model import Member, Opportunity
from spe_core.operations import Operation
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy
from spe_core.store.base import Store, Transaction
from spe_core.team import MemberSettings

__all__ = ["EngineBase", "once"]

P = ParamSpec("P")
R = TypeVar("R")


def once(operation: Callable[P, R]) -> Callable[P, R]:
    """An engine operation done once more when the store made sure its commit did not
    happen (:class:`~spe_core.errors.NotCommitted`: the connection broke while it
    committed); a second such failure reaches the caller."""

    @functools.wraps(operation)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return operation(*args, **kwargs)
        except NotCommitted:
            return operation(*args, **kwargs)

    return run


class EngineBase:
    """The engine's state and plumbing; the operations live in the parts that extend it."""

    def __init__(
        self,
        store: Store,
        *,
        policy: QueuePolicy | None = None,
        clock: Clock | None = None,
        plugins: Plugins | None = None,
        routing_table: routing.RoutingTable | None = None,
        calendar_rules: calendar.CalendarRules | None = None,
        member_settings: Iterable[MemberSettings] = (),
    ) -> None:
        model.check_instance(store, Store, "store")  # type: ignore[type-abstract]
        model.check_optional(clock, Clock, "clock")  # type: ignore[type-abstract]
        model.check_optional(policy, QueuePolicy, "policy")
        model.check_optional(plugins, Plugins, "plugins")
        model.check_optional(routing_table, routing.RoutingTable, "routing_table")
        model.check_optional(calendar_rules, calendar.CalendarRules, "calendar_rules")
        member_settings = model.check_items(member_settings, MemberSettings, "member_settings")
        self.store = store
        self.member_settings: dict[str, MemberSettings] = {s.member_id: s for s in member_settings}
        self.calendar_rules = calendar_rules or calendar.CalendarRules()
        self.routing = routing_table or routing.RoutingTable()
        self.policy = policy or QueuePolicy()
        self.clock: Clock = clock or SystemClock()
        self.plugins = plugins or Plugins.create()
        self._units = UnitRunner(store, self._now, self._notify, self._listening)
        self._closed = False

    def unit(self, operation_id: str | None = None) -> AbstractContextManager[UnitOfWork]:
        """Open a unit of work (or join the one open in this thread).

        A new unit's events are stored with ``operation_id`` (a fresh id when None; see
        :mod:`spe_core.operations`).

        Everything done inside commits together; the events recorded reach the
        ``spe_event`` listeners after the commit. Engine operations called inside
        join it::

            with engine.unit():
                engine.withdraw("opp-1", "closed in the CRM")
                engine.add_to_backlog([replacement])
        """
        if self._closed:
            raise StoreError(
                "this engine is closed (its store was closed).",
                "open a new store and engine, or close the engine only when done with it.",
            )
        return self._units.open(operation_id)

    @staticmethod
    def _done_before(
        u: UnitOfWork, operation_id: str | None, kind: str, request: str
    ) -> str | None:
        """The result of the call already done under the caller's ``operation_id`` (JSON),
        or None when it is new. The id is locked until the unit ends, so two calls with
        one id at once run one after the other and the second finds the first's result.
        The same id with another call is refused."""
        if operation_id is None:
            return None
        u.lock(f"operation:{operation_id}")
        done = u.tx.get_operation(operation_id)
        if done is None:
            return None
        if done.kind != kind or done.request != request:
            raise InvalidValue(
                f"operation_id {operation_id!r} was used for another call "
                f"({done.kind} {done.request}), not for {kind} {request}.",
                "use a new operation_id for each new call; repeat an id only to retry "
                "the very same call.",
            )
        return done.result

    @staticmethod
    def _remember(
        u: UnitOfWork, operation_id: str | None, kind: str, request: str, result: object
    ) -> None:
        """Keep ``result`` under the caller's ``operation_id`` (nothing when None)."""
        if operation_id is not None:
            u.tx.put_operation(Operation(operation_id, kind, request, codec.to_json(result), u.now))

    def _notify(self, recorded: Sequence[Recorded]) -> None:
        self.plugins.notify(recorded)

    def _listening(self) -> bool:
        return bool(self.plugins.manager.hook.spe_event.get_hookimpls())

    def _now(self) -> datetime:
        now = self.clock.now()
        if now.tzinfo is None:
            raise InvalidValue(
                f"the engine's clock returned a naive time {now.isoformat()}.",
                "give the engine a clock whose now() is timezone-aware.",
            )
        return now.astimezone(UTC)  # real time: every stored instant is UTC

    @staticmethod
    def _member(tx: Transaction, member_id: str) -> Member:
        member = tx.get_member(member_id)
        if member is None:
            raise UnknownMember(member_id)
        return member

    @staticmethod
    def _opportunity(tx: Transaction, opportunity_id: str) -> Opportunity:
        opp = tx.get_opportunity(opportunity_id)
        if opp is None:
            raise UnknownOpportunity(opportunity_id)
        return opp
