"""Every hook of spe-sdk, in one module.

Plugins implement these with ``@spe_core.hookimpl`` and are found through the
``spe`` entry-point group (or registered with
:meth:`spe_core.plugins.Plugins.register`). Each docstring says when the hook
is called, what it receives and what it must return; ``docs/plugins.md``
repeats each signature (a test keeps the two in step).

Hooks marked *firstresult* are policies: the first plugin returning something
other than ``None`` decides, and the built-in default (registered ``trylast``)
answers when no plugin does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from spe_core.calendar import CalendarRules
    from spe_core.routing import Candidate, Route

from spe_core.events import Recorded
from spe_core.model import Location, Opportunity, Task

__all__ = ["hookimpl", "hookspec"]

PROJECT = "spe"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def spe_register_adapters(register: Callable[[str, Any], None]) -> None:
    """Register CRM adapter classes by name.

    Called once when the plugin manager is set up. Call
    ``register(name, adapter_class)`` for each adapter the plugin provides,
    e.g. ``register("pipedrive", PipedriveAdapter)``. Names are what CRM
    admins write as ``[adapter] name`` in ``spe.toml``; registering a name
    twice is an error. Returns nothing.
    """


@hookspec(firstresult=True)
def spe_score_opportunity(opportunity: Opportunity, now: datetime) -> float | None:
    """Score an opportunity as it enters the queue (*firstresult*).

    Called once per opportunity when it is enqueued or moved from the backlog
    into the queue, with the time of the move. Return the score to rank it by
    (higher is pulled first within a tier), or ``None`` to leave the decision
    to the next plugin. The built-in default returns ``opportunity.score``
    unchanged. Must be pure and fast: it runs inside the store transaction.
    ``opportunity.queued_at`` is always set here (the engine stamps it first);
    its type admits None only because callers may leave it out on input.
    """


@hookspec(firstresult=True)
def spe_score_opportunities(
    opportunities: Sequence[Opportunity], now: datetime
) -> Sequence[float | None] | None:
    """Score a page of opportunities in one call (*firstresult*).

    Called where several opportunities are scored at once, with the time of the
    move: the morning top-up from the backlog, an enqueue of several, and the queued
    opportunities of one page the sync re-ranks. Return one score per opportunity, in
    order (``None`` in a place leaves that one to :func:`spe_score_opportunity`), or
    ``None`` to leave the whole page to the next plugin. When no plugin answers, the
    engine asks ``spe_score_opportunity`` for each opportunity, so plugins that only
    score one at a time keep working; implement this hook when scoring many at once
    is cheaper (one model call, one lookup). Must be pure and fast: it runs inside the
    store transaction. Every ``queued_at`` is set.
    """


@hookspec
def spe_event(recorded: Recorded) -> None:
    """Receive every domain event once it is committed (a listener).

    Called after the store transaction that recorded the event commits, in
    log order, with the event and its sequence number in the log. Use it for
    notifications, custom logging or metrics. The return value is ignored; an
    exception is logged and does not undo the change or stop other listeners.
    """


# --- tasks (routing) ------------------------------------------------------------------


@hookspec(firstresult=True)
def spe_choose_assignee(
    task: Task,
    route: Route,
    candidates: Sequence[Candidate],
    account_member_id: str | None,
    now: datetime,
) -> str | None:
    """Choose who gets a task among the eligible candidates (*firstresult*).

    Called once per routing decision, inside the store transaction, with the
    task, its route (roles, strategy, weight, SLA), its eligible candidates
    (each with ``member``, open-task ``load`` and round-robin ``served``
    count; never empty, ordered by member id), the member who last handled the
    task's account (or None) and the time. The candidates are the best
    eligible members by the route's strategy (at most
    ``spe_core.engine.routing.TOP_K``, 8), plus the account's last member when
    eligible: routing a task never scans the whole role. Return the chosen
    member's id, or ``None`` to leave the choice to the next plugin. The
    built-in default applies the route's strategy (least_loaded or
    round_robin, with account continuity). Returning an id that is not among
    the candidates is an error: eligibility is the core's rule, not a plugin's.
    """


# --- calendar (bookings and busy time) ------------------------------------------------


@hookspec(firstresult=True)
def spe_travel_minutes(
    origin: Location, destination: Location, departure: datetime, rules: CalendarRules
) -> float | None:
    """Minutes to travel from ``origin`` to ``destination`` leaving at ``departure``
    (*firstresult*).

    Called by the calendar rules for every pair of consecutive places in a
    field member's day (home base, customer sites, home again), inside the
    store transaction of ``propose``, ``book``, ``plan_week`` and ``validate``,
    so it must be fast and must not do network calls per pair: load a travel
    matrix or a routing table up front and look it up here. ``rules`` is the
    :class:`~spe_core.calendar.CalendarRules` in force (road factor, speed,
    overhead). Return the minutes (0 or more; fractions are rounded up to the
    next whole minute) or ``None`` to leave the answer to the next plugin. The
    built-in default is the great-circle distance x ``road_factor`` /
    ``speed_kmh`` + ``travel_overhead`` (0 for the same place).
    """
