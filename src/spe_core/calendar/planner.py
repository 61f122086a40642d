"""The week planner: :func:`plan_week` books a batch (as many as fit, then least travel),
with a retry over every member with room and a local search under a work budget."""

from __future__ import annotations

import heapq
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from spe_core.calendar.days import _Day, _week
from spe_core.calendar.propose import (
    _days_between,
    _Fit,
    _Key,
    _load,
    _Planner,
    _request_bounds,
    _spare_seconds,
)
from spe_core.calendar.rules import _ZERO, CalendarRules, MemberCalendar, TravelFn, WeekPlan
from spe_core.calendar.travel import great_circle_km
from spe_core.calendar.validation import _eligibility, stale_reason
from spe_core.errors import InvalidValue
from spe_core.model import (
    AppointmentRequest,
    Booking,
    Location,
    Member,
    Role,
)

__all__ = ["plan_week"]


# --- planning a week ----------------------------------------------------------------------


def plan_week(
    requests: Iterable[AppointmentRequest],
    calendars: Iterable[MemberCalendar],
    rules: CalendarRules,
    travel: TravelFn,
    now: datetime,
    *,
    by: Mapping[str, str] | str = "planner",
    nearest: int | None = 12,
    improve: bool = True,
    improve_steps: int = 8_000,
) -> WeekPlan:
    """Place as many requests as possible, then keep travel low (a batch for coordinators).

    Cheapest insertion: every request is priced at its least added travel
    over the members' days it could go in (for in-person meetings, the
    ``nearest`` members by home base; None: all), and the cheapest request is
    placed first, re-pricing lazily as days fill; requests that fit nowhere
    are returned with the reason. Ties between members are broken by load
    (member id only last). The improvement phase then retries the unplaced
    ones over all members, and, for at most ``improve_steps`` tried moves (a
    work budget, not a clock: the plan is deterministic), moves placed
    meetings to cheaper places, swaps meetings between member days and trades
    a placed meeting for an unplaced request when that lowers travel (the
    number booked never drops), and finally retries the unplaced ones.
    Conference calls go to inside salespeople first, to the member-day with
    the most free working time; calls no inside salesperson can take are
    placed on field salespeople only after all that, in the time the visits
    leave, so calls never cost an in-person meeting.
    ``by`` names the coordinator per member id (or one name for all). Every
    returned booking passes :func:`validate`, and existing bookings and busy
    time are never moved.
    """
    now = now.astimezone(UTC)
    calendars = list(calendars)
    requests = list(requests)
    seen: set[str] = set()
    for r in requests:
        if r.id in seen:
            raise InvalidValue(
                f"appointment request {r.id!r} appears twice in the batch.",
                "give every request its own id.",
            )
        seen.add(r.id)
    planner = _Planner(calendars, rules, travel, now)
    members = {c.member.id: c.member for c in calendars}
    booked_ids = {bid for c in calendars for bid in (b.id for b in c.bookings)}
    usable: dict[str, MemberCalendar] = {}
    why_not: dict[str, str] = {}
    for cal in calendars:
        stale = stale_reason(cal, rules, now)
        if stale is None and cal.member.active:
            usable[cal.member.id] = cal
        else:
            why_not[cal.member.id] = stale or f"{cal.member.id} is not active."

    def coordinator(member_id: str) -> str:
        if isinstance(by, str):
            return by
        return by.get(member_id) or members[member_id].coordinator_id or "planner"

    # candidate members per request
    candidates: dict[str, list[Member]] = {}
    everyone: dict[str, list[Member]] = {}
    unplanned: dict[str, str] = {}
    for r in requests:
        if r.id in booked_ids:
            unplanned[r.id] = f"request {r.id!r} is already booked."
            continue
        ok = [m.member for m in usable.values() if _eligibility(m.member, r) is None]
        everyone[r.id] = ok
        if r.in_person and nearest is not None and r.location is not None:
            loc = r.location
            ok.sort(key=lambda m: (great_circle_km(m.home_base or loc, loc), m.id))
            ok = ok[:nearest]
        if not ok:
            reasons = sorted(
                {
                    (_eligibility(c.member, r) or ("", why_not.get(c.member.id, "")))[1]
                    for c in calendars
                }
                - {""}
            )
            unplanned[r.id] = (
                "no member can take it: " + "; ".join(reasons[:3])
                if reasons
                else "there are no members to plan for."
            )
            continue
        candidates[r.id] = ok
    by_id = {r.id: r for r in requests}
    # cache of (day version, priced fits) per request and member day
    cache: dict[str, dict[tuple[str, date], tuple[tuple[int, int], list[tuple[_Key, _Fit]]]]]
    cache = defaultdict(dict)
    # the member days a request may go in, per request and member (they never change)
    spots: dict[tuple[str, str], list[tuple[date, _Day, tuple[str, tuple[int, int]]]]] = {}

    def price(r: AppointmentRequest) -> tuple[_Key, _Day, _Fit] | None:
        lo, hi = _request_bounds(r, rules, now)
        if lo + r.duration > hi:
            return None
        best: tuple[_Key, _Day, _Fit] | None = None
        mine = cache[r.id]
        counts = planner.week_counts
        for m in candidates[r.id]:
            if not (r.in_person or field_calls) and m.role is Role.FIELD_SALES:
                continue  # a call on field sales waits until the visits are placed
            days = spots.get((r.id, m.id))
            if days is None:
                days = spots[(r.id, m.id)] = [
                    (d, planner.day(m, d), (m.id, _week(d)))
                    for d in _days_between(m, lo, hi, rules.horizon_days)
                ]
            for d, day, week in days:
                cached = mine.get((m.id, d))
                # fits depend on the day and on the week's count (the weekly cap)
                version = (day.version, counts[week])
                if cached is None or cached[0] != version:
                    fits = planner.best_in_day(day, r, lo, hi)
                    # calls: inside sales (tier 0) before field sales (tier 2, only once
                    # the visits are placed), the day with the most spare time first;
                    # in person: least travel, then earliest; then load, member id last
                    if r.in_person:
                        tier, spare = 1, 0
                    else:
                        tier = 2 if m.role is Role.FIELD_SALES else 0
                        spare = -_spare_seconds(day) if fits else 0
                    load = (day.in_person, _load(day))
                    cached = (
                        version,
                        [
                            (
                                (
                                    tier,
                                    round(f.added.total_seconds()),
                                    spare,
                                    f.start,
                                    *load,
                                    m.id,
                                ),
                                f,
                            )
                            for f in fits
                        ],
                    )
                    mine[(m.id, d)] = cached
                for key, fit in cached[1]:
                    if best is None or key < best[0]:
                        best = (key, day, fit)
        return best

    placed: dict[str, tuple[_Day, Booking]] = {}

    def place(r: AppointmentRequest, day: _Day, fit: _Fit) -> bool:
        booking = Booking(r, day.member.id, fit.start, coordinator(day.member.id), now)
        if not planner.confirm(day, booking):
            return False
        planner.commit(day, booking)
        placed[r.id] = (day, booking)
        return True

    def insert_all(pending: Iterable[str]) -> None:
        heap: list[tuple[_Key, int, str]] = []
        counter = itertools.count()
        for rid in pending:
            priced = price(by_id[rid])
            if priced is None:
                unplanned[rid] = _no_room(by_id[rid])
                continue
            heapq.heappush(heap, (priced[0], next(counter), rid))
        rejected: dict[str, int] = defaultdict(int)
        while heap:
            _, _, rid = heapq.heappop(heap)
            r = by_id[rid]
            priced = price(r)
            if priced is None:
                unplanned[rid] = _no_room(r)
                continue
            if heap and priced[0] > heap[0][0]:
                heapq.heappush(heap, (priced[0], next(counter), rid))
                continue
            if place(r, priced[1], priced[2]):
                unplanned.pop(rid, None)
                continue
            # the fast check and the validator disagree: never book it there
            rejected[rid] += 1
            bad = priced[1]
            cache[rid][(bad.member.id, bad.day)] = (
                (bad.version, planner.week_counts[(bad.member.id, _week(bad.day))]),
                [],
            )
            if rejected[rid] < 5:
                heapq.heappush(heap, (priced[0], next(counter), rid))
            else:
                unplanned[rid] = _no_room(r)

    # calls go to inside sales while the visits are placed and improved; the calls left
    # over then take the field time the visits leave (in-person capacity comes first)
    field_calls = False
    insert_all(r.id for r in requests if r.id in candidates)
    if improve:
        budget = _Budget(improve_steps)

        def retry_all() -> None:
            # what is still unplaced may fit with a member further away
            retry = sorted(rid for rid in unplanned if rid in candidates)
            if not retry:
                return
            bounds = [_request_bounds(by_id[rid], rules, now) for rid in retry]
            lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
            roomy = {
                m.id for m in members.values() if m.id in usable and _has_room(planner, m, lo, hi)
            }
            for rid in retry:
                if by_id[rid].in_person:
                    candidates[rid] = [m for m in everyone[rid] if m.id in roomy]
                else:
                    candidates[rid] = everyone[rid]
            insert_all(retry)

        retry_all()
        _improve(placed, planner, place, rules, by_id, unplanned, candidates, budget)
        retry_all()
    field_calls = True
    insert_all(sorted(rid for rid in unplanned if rid in candidates and not by_id[rid].in_person))
    bookings = tuple(sorted((b for _, b in placed.values()), key=lambda b: (b.start, b.id)))
    touched = {(d.member.id, d.day) for d, _ in placed.values()}
    total = sum((planner.days[k].travel(travel) for k in sorted(touched)), _ZERO)
    return WeekPlan(bookings, tuple(sorted(unplanned.items())), total)


def _has_room(planner: _Planner, member: Member, lo: datetime, hi: datetime) -> bool:
    """True if some day of ``member`` between ``lo`` and ``hi`` is under both caps."""
    rules = planner.rules
    for d in _days_between(member, lo, hi, rules.horizon_days):
        if planner.week_counts[(member.id, _week(d))] >= rules.meetings_per_week:
            continue
        day = planner.day(member, d)
        if day.start is not None and day.in_person < rules.meetings_per_day:
            return True
    return False


def _no_room(r: AppointmentRequest) -> str:
    return (
        f"no member has room for it between {r.earliest.isoformat()} and "
        f"{r.deadline.isoformat()} (caps, busy time, travel, working hours or holidays)."
    )


def _improve(
    placed: dict[str, tuple[_Day, Booking]],
    planner: _Planner,
    place: Callable[[AppointmentRequest, _Day, _Fit], bool],
    rules: CalendarRules,
    requests: Mapping[str, AppointmentRequest],
    unplanned: dict[str, str],
    candidates: Mapping[str, Sequence[Member]],
    budget: _Budget,
) -> None:
    """Local search on travel until nothing improves or the ``budget`` of tried moves is spent.

    Three moves, each kept only when it lowers total travel by a whole minute
    or more and every placement passes :meth:`_Planner.confirm`: relocate one
    meeting, swap two meetings between member days, and trade a placed
    meeting for an unplaced request near it. Deterministic for a given input.
    """
    travel = planner.travel
    near = _neighbours(requests.values(), 12)

    # a quick estimate (travel ignoring time) picks which moves are worth the full check
    # keyed by object identity (hashing a Location costs more than the lookup); the
    # places are pinned so no identity is reused while the memo lives
    memo: dict[tuple[int, int], float] = {}
    pinned: dict[int, Location] = {}

    def hop(a: Location, b: Location) -> float:
        key = (id(a), id(b))
        found = memo.get(key)
        if found is None:
            pinned[key[0]], pinned[key[1]] = a, b
            found = memo[key] = travel(a, b, planner.now).total_seconds()
        return found

    def stops(day: _Day, skip: str) -> list[Location]:
        assert day.home is not None
        inner = [i.loc for i in day.items if i.loc is not None and i.key != skip]
        return [day.home, *inner, day.home]

    def cost(route: list[Location]) -> float:
        return sum(hop(a, b) for a, b in itertools.pairwise(route))

    def sig(day: _Day) -> tuple[object, ...]:
        """The day's content (a failed try puts it back as it was, with a new version)."""
        return (id(day), *((i.key, i.start) for i in day.items))

    removal: dict[str, tuple[tuple[object, ...], float, list[tuple[Location, Location, float]]]]
    removal = {}

    def exchange_gain(x: str, loc: Location) -> float:
        """Estimated travel saved by taking ``x`` out of its day and putting ``loc`` in."""
        day = placed[x][0]
        if day.home is None:
            return math.inf
        known = removal.get(x)
        now_sig = sig(day)
        if known is None or known[0] != now_sig:
            rest = stops(day, x)
            legs = [(a, b, hop(a, b)) for a, b in itertools.pairwise(rest)]
            saved = cost(stops(day, "")) - sum(leg[2] for leg in legs)
            known = removal[x] = (now_sig, saved, legs)
        get = memo.get
        where = id(loc)
        best = math.inf
        for a, b, ab in known[2]:
            there = get((id(a), where))
            back = get((where, id(b)))
            if there is None:
                there = hop(a, loc)
            if back is None:
                back = hop(loc, b)
            best = min(best, there + back - ab)
        return known[1] - best

    # neighbourhoods checked without success, by the days and versions they were checked at
    checked: dict[str, tuple[tuple[object, ...], ...]] = {}
    settled: dict[str, tuple[object, ...]] = {}

    def unchanged(rid: str, others: Iterable[str]) -> bool:
        stamp = tuple(
            sig(placed[o][0]) if o in placed else () for o in itertools.chain((rid,), others)
        )
        if checked.get(rid) == stamp:
            return True
        checked[rid] = stamp
        return False

    def may_go(r: AppointmentRequest, day: _Day) -> bool:
        """False if the request's range or customer windows miss the day's working hours."""
        if day.start is None or day.end is None:
            return False
        lo, hi = _request_bounds(r, rules, planner.now)
        if lo >= day.end or hi <= day.start:
            return False
        return not r.windows or any(w.start < day.end and w.end > day.start for w in r.windows)

    def take(rid: str) -> tuple[_Day, Booking]:
        day, booking = placed.pop(rid)
        planner.uncommit(day, booking)
        return day, booking

    def put(rid: str, day: _Day, booking: Booking) -> None:
        planner.commit(day, booking)
        placed[rid] = (day, booking)

    def fit_in(day: _Day, r: AppointmentRequest) -> _Fit | None:
        if _eligibility(day.member, r) is not None:
            return None
        lo, hi = _request_bounds(r, rules, planner.now)
        if lo + r.duration > hi:
            return None
        fits = planner.best_in_day(day, r, lo, hi)
        return min(fits, key=lambda f: (f.added, f.start)) if fits else None

    def relocate(rid: str, roomy: Mapping[str, list[_Day]]) -> bool:
        """Move the meeting to its cheapest place: its own day or a day with room."""
        before = placed[rid][0].travel(travel)
        day, booking = take(rid)
        saving = before - day.travel(travel)
        r = booking.request
        best: tuple[timedelta, datetime, _Day, _Fit] | None = None
        others = (d for m in candidates.get(rid, ()) for d in roomy.get(m.id, ()))
        for there in itertools.chain((day,), others):
            if there is not day and not may_go(r, there):
                continue
            fit = fit_in(there, r)
            if fit is not None and (best is None or (fit.added, fit.start) < best[:2]):
                best = (fit.added, fit.start, there, fit)
        if best is not None and best[0] < saving and place(r, best[2], best[3]):
            return True
        put(rid, day, booking)
        return False

    def swap(x: str, y: str) -> bool:
        dx, bx = placed[x]
        dy, by_ = placed[y]
        if dx is dy:
            return False
        before = dx.travel(travel) + dy.travel(travel)
        take(x)
        take(y)
        fy = fit_in(dx, by_.request)
        fx = fit_in(dy, bx.request) if fy is not None else None
        if (
            fx is not None
            and fy is not None
            and dx.travel(travel) + dy.travel(travel) + fx.added + fy.added < before
            and place(by_.request, dx, fy)
        ):
            if place(bx.request, dy, fx):
                return True
            take(y)  # undo y in x's day, then put both back
        put(x, dx, bx)
        put(y, dy, by_)
        return False

    def trade(u: str, x: str) -> bool:
        dx, bx = placed[x]
        before = dx.travel(travel)
        take(x)
        r = requests[u]
        fu = fit_in(dx, r)
        if fu is not None and dx.travel(travel) + fu.added < before and place(r, dx, fu):
            unplanned.pop(u, None)
            unplanned[x] = _no_room(bx.request)
            return True
        put(x, dx, bx)
        return False

    while budget.left > 0:
        moved = 0
        cap = rules.meetings_per_day
        roomy: dict[str, list[_Day]] = defaultdict(list)
        for key in sorted(planner.days):
            day = planner.days[key]
            if day.start is not None and day.in_person < cap:
                roomy[key[0]].append(day)
        for rid in sorted(placed, key=lambda r: (placed[r][1].start, r)):
            if rid in placed and placed[rid][0].home is None:
                continue  # a call with inside sales: no travel to save, no budget spent
            if budget.spend():
                return
            if rid not in placed:
                continue
            # with every other day full, only its own day matters: skip it if unchanged
            stuck = not any(m.id in roomy for m in candidates.get(rid, ()))
            stamp = sig(placed[rid][0])
            if stuck and settled.get(rid) == stamp:
                continue
            settled[rid] = stamp
            if relocate(rid, roomy):
                moved += 1
        for x in sorted(placed):
            if x in requests and not requests[x].in_person:
                continue  # calls have no place to swap
            if budget.spend():
                return
            lx = requests[x].location if x in requests else None
            if lx is None or unchanged(x, near.get(x, ())):
                continue
            options = []
            for y in near.get(x, ()):
                ly = requests[y].location
                if (
                    y in placed
                    and ly is not None
                    and placed[y][0] is not placed[x][0]
                    and may_go(requests[y], placed[x][0])
                    and may_go(requests[x], placed[y][0])
                ):
                    gain = exchange_gain(x, ly) + exchange_gain(y, lx)
                    if gain >= 60:
                        options.append((-gain, y))
            for _, y in sorted(options):
                if x in placed and y in placed and swap(x, y):
                    moved += 1
                    break
        for u in sorted(unplanned):
            if u in requests and not requests[u].in_person:
                continue  # calls have no place to trade
            if budget.spend():
                return
            lu = requests[u].location if u in requests else None
            if lu is None or unchanged(u, near.get(u, ())):
                continue
            options = []
            for x in near.get(u, ()):
                if x in placed and may_go(requests[u], placed[x][0]):
                    gain = exchange_gain(x, lu)
                    if gain >= 60:
                        options.append((-gain, x))
            for _, x in sorted(options):
                if u in unplanned and x in placed and trade(u, x):
                    moved += 1
                    break
        if not moved:
            return


class _Budget:
    """A deterministic work budget for the improvement search (no clock reads in rules)."""

    __slots__ = ("left",)

    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self) -> bool:
        """Spend one step; True when the budget is used up."""
        self.left -= 1
        return self.left < 0


def _neighbours(requests: Iterable[AppointmentRequest], k: int) -> dict[str, list[str]]:
    """The ``k`` nearest located in-person requests to each one (a grid, no full scan)."""
    located = sorted((r.id, r.location) for r in requests if r.in_person and r.location is not None)
    if len(located) < 2:
        return {}
    cell = 0.05  # degrees of latitude, about 5.5 km
    grid: dict[tuple[int, int], list[tuple[str, float, float]]] = defaultdict(list)
    points: list[tuple[str, float, float, int, int]] = []
    for rid, loc in located:
        assert loc is not None
        x = loc.lon * math.cos(math.radians(loc.lat))
        gx, gy = math.floor(x / cell), math.floor(loc.lat / cell)
        grid[(gx, gy)].append((rid, x, loc.lat))
        points.append((rid, x, loc.lat, gx, gy))
    out: dict[str, list[str]] = {}
    for rid, x, y, gx, gy in points:
        ring = 1
        while True:
            found = [
                ((ox - x) ** 2 + (oy - y) ** 2, oid)
                for i in range(gx - ring, gx + ring + 1)
                for j in range(gy - ring, gy + ring + 1)
                for oid, ox, oy in grid.get((i, j), ())
                if oid != rid
            ]
            if len(found) >= k or len(found) >= len(points) - 1 or ring > 64:
                break
            ring += 1
        found.sort()
        out[rid] = [oid for _, oid in found[:k]]
    return out
