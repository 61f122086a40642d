"""Calendar: busy time read from the CRM, slots proposed, field visits and calls booked
by sales coordinators, every booking re-validated in the transaction that writes it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta
from typing import overload

import attrs

from spe_core import calendar, model, worktime
from spe_core.engine.base import EngineBase, once
from spe_core.errors import InvalidValue, NotFound, RuleViolation, WrongState
from spe_core.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    BusyTimeRead,
)
from spe_core.model import (
    AppointmentRequest,
    Booking,
    BookingStatus,
    Busy,
    Member,
    Role,
    aware,
)
from spe_core.store.base import Transaction

__all__ = ["CalendarPart"]

_BUSY_READ = "calendar:busy_read:"


class CalendarPart(EngineBase):
    """Busy time, proposals, bookings and the week planner."""

    def _travel(self) -> calendar.TravelFn:
        return self.plugins.travel(self.calendar_rules)

    @staticmethod
    def _weeks(member: Member, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """The member's whole local ISO weeks covering ``start``..``end`` (for the weekly cap)."""
        zone = member.zone
        first = start.astimezone(zone).date()
        last = end.astimezone(zone).date()
        monday = first - timedelta(days=first.weekday())
        after = last + timedelta(days=7 - last.weekday())
        return (
            worktime.local_instant(zone, monday, time(0)),
            worktime.local_instant(zone, after, time(0)),
        )

    def _calendar(
        self, tx: Transaction, member: Member, start: datetime, end: datetime
    ) -> calendar.MemberCalendar:
        lo, hi = self._weeks(member, start, end)
        read = tx.get_meta(_BUSY_READ + member.id)
        return calendar.MemberCalendar(
            member,
            tuple(tx.iter_bookings(member.id, lo, hi)),
            tuple(tx.iter_busy(member.id, lo, hi)),
            None if read is None else datetime.fromisoformat(read),
        )

    @once
    def record_busy(
        self,
        member_id: str,
        busy: Iterable[Busy],
        start: datetime,
        end: datetime,
        *,
        read_at: datetime | None = None,
    ) -> int:
        """Replace the member's busy time in ``start``..``end`` with ``busy`` (a calendar read).

        Marks the member's busy time as read at ``read_at`` (default now), which
        the freshness rule (:attr:`~spe_core.calendar.CalendarRules.busy_max_age`)
        checks before offering the member as free. Returns how many entries were stored.
        """
        model.check_id(member_id, "member_id")
        busy = model.check_items(busy, Busy, "busy")
        model.check_time(start, "start")
        model.check_time(end, "end")
        model.check_optional_time(read_at, "read_at")
        items = list(busy)
        for item in items:
            if item.member_id != member_id:
                raise InvalidValue(
                    f"busy time {item.id!r} belongs to {item.member_id!r}, not {member_id!r}.",
                    "record each member's busy time separately.",
                )
        with self.unit() as u:
            tx, now = u.tx, u.now
            self._member(tx, member_id)
            tx.replace_busy(member_id, start, end, items)
            tx.set_meta(_BUSY_READ + member_id, (read_at or now).isoformat())
            u.record(
                BusyTimeRead(at=now, member_id=member_id, start=start, end=end, count=len(items))
            )
        return len(items)

    @once
    def sync_busy(
        self,
        busy: Iterable[Busy] = (),
        *,
        gone: Iterable[tuple[str, str]] = (),
        read_for: Iterable[str] = (),
        read_at: datetime | None = None,
    ) -> int:
        """Apply busy time read incrementally from the CRM's calendars (the sync's way).

        ``busy`` entries are stored or replaced by (member, id); ``gone`` names
        (member id, busy id) pairs removed from a calendar (deleted, or shown as
        free); ``read_for`` members are marked as read at ``read_at`` (default
        now), once their whole calendar stream has been read. Unknown members'
        entries are skipped. Returns how many entries changed.
        """
        busy = model.check_items(busy, Busy, "busy")
        gone = model.check_id_pairs(gone, "gone")
        read_for = model.check_ids(read_for, "read_for")
        model.check_optional_time(read_at, "read_at")
        changed = 0
        with self.unit() as u:
            tx, now = u.tx, u.now
            known = {m.id for m in tx.members()}
            per_member: dict[str, list[Busy]] = {}
            for item in busy:
                if item.member_id in known:
                    per_member.setdefault(item.member_id, []).append(item)
            for member_id, items in sorted(per_member.items()):
                for item in items:
                    tx.replace_busy(member_id, item.start, item.start, [item])  # an upsert
                changed += len(items)
                u.record(
                    BusyTimeRead(
                        at=now,
                        member_id=member_id,
                        start=min(i.start for i in items),
                        end=max(i.end for i in items),
                        count=len(items),
                    )
                )
            for member_id, busy_id in gone:
                tx.delete_busy(member_id, busy_id)
                changed += 1
            for member_id in sorted(set(read_for) & known):
                tx.set_meta(_BUSY_READ + member_id, (read_at or now).isoformat())
        return changed

    def _sales_members(self, tx: Transaction, only: Iterable[str] | None) -> list[Member]:
        if only is not None:
            return [self._member(tx, m) for m in sorted(set(only))]
        return [
            m for m in tx.members() if m.role in (Role.FIELD_SALES, Role.INSIDE_SALES) and m.active
        ]

    def propose(
        self,
        request: AppointmentRequest,
        *,
        members: Iterable[str] | None = None,
        limit: int = 10,
    ) -> calendar.Proposal:
        """Ranked slots for ``request`` across active field and inside members (or ``members``).

        See :func:`spe_core.calendar.propose` for the ranking and the reasons
        members are left out. Nothing is written; book a slot with :meth:`book`.
        """
        model.check_instance(request, AppointmentRequest, "request")
        members = None if members is None else model.check_ids(members, "members")
        model.check_int(limit, "limit", minimum=1, maximum=10_000)
        rules = self.calendar_rules
        with self.unit() as u:
            tx, now = u.tx, u.now
            team = self._sales_members(tx, members)
            end = min(request.deadline, max(request.earliest, now) + timedelta(rules.horizon_days))
            calendars = [self._calendar(tx, m, max(request.earliest, now), end) for m in team]
        return calendar.propose(request, calendars, rules, self._travel(), now, limit=limit)

    def _check_fits(
        self,
        cal: calendar.MemberCalendar,
        booking: Booking,
        now: datetime,
        without: str | None = None,
    ) -> None:
        """Raise :class:`RuleViolation` unless ``booking`` adds no violation to ``cal``."""
        rules, travel = self.calendar_rules, self._travel()
        if booking.start < now:
            raise RuleViolation(
                f"cannot book {booking.id!r} at {booking.start.isoformat()}: that is in the past.",
                "choose a start after now.",
            )
        stale = calendar.stale_reason(cal, rules, now)
        if stale is not None:
            raise RuleViolation(
                f"cannot book {booking.id!r}: {stale}", "refresh the member's busy time first."
            )
        base = [b for b in cal.bookings if b.id != without]
        before = {
            (v.rule, v.booking_id)
            for v in calendar.validate(attrs.evolve(cal, bookings=base), rules, travel)
        }
        after = calendar.validate(attrs.evolve(cal, bookings=[*base, booking]), rules, travel)
        new = [v for v in after if (v.rule, v.booking_id) not in before]
        if new:
            raise RuleViolation(
                f"cannot book {booking.id!r} for {booking.member_id} at "
                f"{booking.start.isoformat()}: " + " ".join(v.reason for v in new),
                "ask propose() for a slot that fits, or choose another time or member.",
            )

    @overload
    def book(self, request: calendar.Slot, *, by: str) -> Booking: ...

    @overload
    def book(
        self, request: AppointmentRequest, member_id: str, start: datetime, *, by: str
    ) -> Booking: ...

    @once
    def book(
        self,
        request: AppointmentRequest | calendar.Slot,
        member_id: str | None = None,
        start: datetime | None = None,
        *,
        by: str,
    ) -> Booking:
        """Book ``request`` in ``member_id``'s calendar at ``start``, on behalf of ``by``.

        Or book a slot :meth:`propose` offered as it is: ``engine.book(slot, by="cy")``
        (the slot carries its request, member and start).

        Re-validated inside the store transaction that writes it, with the
        member's row locked (PostgreSQL) or the writer lock held (SQLite), so
        two coordinators can never double-book a slot: the second one gets a
        :class:`~spe_core.errors.RuleViolation` naming the clash.
        """
        if isinstance(request, calendar.Slot):
            slot = request
            if slot.request is None:
                raise InvalidValue(
                    f"the slot for {slot.member_id} at {slot.start.isoformat()} carries no "
                    "request.",
                    "book a slot from propose(), or pass the request, member id and start.",
                )
            if member_id is not None or start is not None:
                raise InvalidValue(
                    "book(slot, ...) was also given a member_id or start.",
                    "pass the slot alone (book(slot, by=...)), or the request, member id and "
                    "start.",
                )
            request, member_id, start = slot.request, slot.member_id, slot.start
        model.check_instance(request, AppointmentRequest, "request")
        member_id = model.check_id(member_id, "member_id")
        model.check_id(by, "by")
        start = model.check_time(start, "start")
        aware(start, "start")
        with self.unit() as u:
            tx, now = u.tx, u.now
            member = self._member(tx, member_id)
            existing = tx.get_booking(request.id)
            if existing is not None and existing.active:
                raise WrongState(
                    f"request {request.id!r} is already booked for {existing.member_id} at "
                    f"{existing.start.isoformat()}.",
                    "reschedule or cancel that booking instead of booking it again.",
                )
            booking = Booking(request, member.id, start, by, now)
            self._check_fits(self._calendar(tx, member, start, booking.end), booking, now)
            tx.put_booking(booking)
            u.record(AppointmentBooked(at=now, booking=booking, by=by))
        return booking

    def _active_booking(self, tx: Transaction, booking_id: str) -> Booking:
        booking = tx.get_booking(booking_id)
        if booking is None:
            raise NotFound(
                f"No booking with id {booking_id!r} is known to this store.",
                "check the id (a booking's id is its appointment request's id).",
            )
        if not booking.active:
            raise WrongState(
                f"booking {booking_id!r} is {booking.status.value}.",
                "book the request again instead.",
            )
        return booking

    @once
    def cancel_booking(self, booking_id: str, *, by: str, reason: str = "") -> Booking:
        """Cancel a booking, freeing its slot (``by``: who cancelled it)."""
        model.check_id(booking_id, "booking_id")
        model.check_id(by, "by")
        model.check_text(reason, "reason")
        with self.unit() as u:
            tx, now = u.tx, u.now
            booking = self._active_booking(tx, booking_id)
            self._member(tx, booking.member_id)
            cancelled = attrs.evolve(booking, status=BookingStatus.CANCELLED)
            tx.put_booking(cancelled)
            u.record(AppointmentCancelled(at=now, booking=cancelled, by=by, reason=reason))
        return cancelled

    @once
    def reschedule(
        self, booking_id: str, start: datetime, *, by: str, member_id: str | None = None
    ) -> Booking:
        """Move a booking to ``start`` (and to ``member_id``, if given), re-validated atomically."""
        model.check_id(booking_id, "booking_id")
        model.check_id(by, "by")
        model.check_optional_id(member_id, "member_id")
        model.check_time(start, "start")
        aware(start, "start")
        with self.unit() as u:
            tx, now = u.tx, u.now
            booking = self._active_booking(tx, booking_id)
            target = member_id or booking.member_id
            for mid in sorted({booking.member_id, target}):  # lock order: by id
                self._member(tx, mid)
            member = self._member(tx, target)
            moved = attrs.evolve(booking, member_id=target, start=start, by=by, booked_at=now)
            self._check_fits(
                self._calendar(tx, member, start, moved.end), moved, now, without=booking.id
            )
            tx.put_booking(moved)
            event = AppointmentRescheduled(
                at=now,
                booking=moved,
                by=by,
                from_member_id=booking.member_id,
                from_start=booking.start,
            )
            u.record(event)
        return moved

    def booking(self, booking_id: str) -> Booking:
        """The booking with ``booking_id`` (cancelled ones too)."""
        model.check_id(booking_id, "booking_id")
        with self.unit() as u:
            tx = u.tx
            found = tx.get_booking(booking_id)
        if found is None:
            raise NotFound(
                f"No booking with id {booking_id!r} is known to this store.",
                "check the id (a booking's id is its appointment request's id).",
            )
        return found

    def bookings(
        self, start: datetime, end: datetime, member_id: str | None = None
    ) -> list[Booking]:
        """Active bookings overlapping ``start``..``end`` (one member's, or everyone's)."""
        model.check_time(start, "start")
        model.check_time(end, "end")
        model.check_optional_id(member_id, "member_id")
        with self.unit() as u:
            tx = u.tx
            return list(tx.iter_bookings(member_id, start, end))

    def validate_calendar(
        self, member_id: str, start: datetime, end: datetime
    ) -> list[calendar.Violation]:
        """The rules the member's calendar breaks in ``start``..``end`` (e.g. after a hand edit
        in the CRM), each with a readable reason; empty when it is valid."""
        model.check_id(member_id, "member_id")
        model.check_time(start, "start")
        model.check_time(end, "end")
        with self.unit() as u:
            tx = u.tx
            member = self._member(tx, member_id)
            cal = self._calendar(tx, member, start, end)
        found = calendar.validate(cal, self.calendar_rules, self._travel())
        in_span = {b.id for b in cal.bookings if b.start < end and b.end > start}
        return [v for v in found if v.booking_id is None or v.booking_id in in_span]

    def plan_week(
        self,
        requests: Iterable[AppointmentRequest],
        *,
        by: str | Mapping[str, str] | None = None,
        members: Iterable[str] | None = None,
    ) -> calendar.WeekPlan:
        """Book a batch of requests at once: as many as fit, then least travel.

        Runs :func:`spe_core.calendar.plan_week` over the active field and
        inside members (or ``members``) inside one store transaction, and books
        every placed request with an :class:`~spe_core.events.AppointmentBooked`
        event naming the member's sales coordinator (``by``: one name, or a mapping from
        field member to coordinator; default each member's ``coordinator_id``).
        """
        requests = model.check_items(requests, AppointmentRequest, "requests")
        model.check_by(by)
        members = None if members is None else model.check_ids(members, "members")
        batch = list(requests)
        if not batch:
            return calendar.WeekPlan((), (), timedelta(0))
        with self.unit() as u:
            tx, now = u.tx, u.now
            lo = max(min(r.earliest for r in batch), now)
            hi = max(lo, max(r.deadline for r in batch))
            team = self._sales_members(tx, members)
            calendars = [self._calendar(tx, m, lo, hi) for m in team]
            plan = calendar.plan_week(
                batch,
                calendars,
                self.calendar_rules,
                self._travel(),
                now,
                by=by
                if isinstance(by, str)
                else {m.id: (by or {}).get(m.id) or m.coordinator_id or "planner" for m in team},
            )
            for booking in plan.bookings:
                existing = tx.get_booking(booking.id)
                if existing is not None and existing.active:
                    raise WrongState(
                        f"request {booking.id!r} is already booked.",
                        "leave booked requests out of the batch.",
                    )
                tx.put_booking(booking)
                u.record(AppointmentBooked(at=now, booking=booking, by=booking.by))
        return plan

    def coordinator_problems(self) -> list[str]:
        """Where the team drifts from one sales coordinator per field salesperson."""
        with self.unit() as u:
            tx = u.tx
            return calendar.coordinator_problems(tx.members())
