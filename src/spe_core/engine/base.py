"""What every part of the engine shares: the store, the clock, the plugins, the policies
and the unit of work every operation runs in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from spe_core import calendar, model, routing
from spe_core.clock import Clock, SystemClock
from spe_core.engine.unit import UnitOfWork, UnitRunner
from spe_core.errors import InvalidValue, StoreError, UnknownMember, UnknownOpportunity
from spe_core.events import Recorded
from spe_core.model import Member, Opportunity
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy
from spe_core.store.base import Store, Transaction
from spe_core.team import MemberSettings

__all__ = ["EngineBase"]


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

    def unit(self) -> AbstractContextManager[UnitOfWork]:
        """Open a unit of work (or join the one open in this thread).

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
        return self._units.open()

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
