"""Calendar rules: where and when a sales coordinator may book a salesperson's meetings.

Pure functions of values passed in (members, their bookings and busy time, the
rules, a travel function and ``now``); nothing here reads a clock or a store.
The engine (:meth:`spe_core.engine.Engine.propose` and friends) loads the
calendars, calls these rules and writes the result atomically.

The rules, SPE's way (see ``docs/calendar.md``):

* in-person meetings go to field salespeople only; conference calls to field or
  inside salespeople;
* at most :attr:`CalendarRules.meetings_per_day` in-person meetings a local day
  (default 4) and :attr:`CalendarRules.meetings_per_week` a local ISO week
  (default 20), whatever the kind of meeting: limits belong to the member;
* everything inside the member's working hours in their time zone, off public
  holidays and absences (partial days block only their hours);
* conference calls are booked at least :attr:`CalendarRules.call_notice` ahead
  and, for a field member, sit before the first or after the last in-person
  meeting of the day (they are taken from home or the hotel);
* :attr:`CalendarRules.buffer` between consecutive calendar entries, no overlap
  with busy time or other bookings;
* the day starts and ends at the member's home base, and the travel between
  consecutive places always fits in the free time between them (busy time,
  whose place is unknown, is travelled around, never through).

:func:`validate` is the one source of truth: :func:`propose` and
:func:`plan_week` only return bookings that :func:`validate` accepts.

Time is real time: every instant the rules compute is UTC and every duration
(a meeting's length, buffers, travel, notice) is measured between absolute
instants, so a two-hour meeting lasts two hours on the night the clocks change.
Working windows come from :mod:`spe_core.worktime` (built per local date, with
its rule for skipped and repeated local times); local times appear only in the
messages.

The package, one module per concern: :mod:`~spe_core.calendar.rules` (the policy
and the values), :mod:`~spe_core.calendar.travel` (travel time),
:mod:`~spe_core.calendar.days` (one member's local day),
:mod:`~spe_core.calendar.validation` (:func:`validate`),
:mod:`~spe_core.calendar.propose` (finding room, :func:`propose`) and
:mod:`~spe_core.calendar.planner` (:func:`plan_week`).
"""

from __future__ import annotations

from spe_core.calendar.days import local_day
from spe_core.calendar.planner import plan_week
from spe_core.calendar.propose import propose
from spe_core.calendar.rules import (
    CalendarRules,
    MemberCalendar,
    Proposal,
    Slot,
    TravelFn,
    Violation,
    WeekPlan,
    coordinator_problems,
)
from spe_core.calendar.travel import great_circle_km, great_circle_travel
from spe_core.calendar.validation import stale_reason, validate

__all__ = [
    "CalendarRules",
    "MemberCalendar",
    "Proposal",
    "Slot",
    "TravelFn",
    "Violation",
    "WeekPlan",
    "coordinator_problems",
    "great_circle_km",
    "great_circle_travel",
    "local_day",
    "plan_week",
    "propose",
    "stale_reason",
    "validate",
]
