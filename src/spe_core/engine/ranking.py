"""Members of a role kept in a strategy's order, so routing a task does not scan the role.

Routing picks, among the eligible members of a task's roles, the smallest by a
strategy's key (least loaded: load per unit of weight, then round-robin count,
then id; round robin: count, then load, then id). Scanning every member for
every task costs O(members) per task; a :class:`Ranking` is a heap of the
members that can take work at all in this transaction (active, not away, in
working hours), keyed by that strategy, read lazily:

* keys only grow while a transaction routes (a chosen member's load and count
  rise; the round-robin floor rises), so a stored key is a lower bound of the
  true key: a popped entry whose key has grown is pushed back with its new key,
  and the first entry popped with an up-to-date key is the true minimum;
* when a key falls (a task's load released during escalation), :meth:`touch`
  pushes a fresh entry and the old one is recognised as stale by its version;
* members popped but not eligible for *this* task (a prior assignee, missing
  skills) are put back after the decision; a member at capacity is left out
  until a load change touches it again.

So the cost per task is O((k + skipped) log n) for the k best candidates, and
the choice is exactly the one a full scan makes (a differential property test
checks this against :func:`spe_core.routing.eligible`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

from spe_core.model import Member

__all__ = ["Ranking"]

Key = tuple[float, float, str]


class Ranking:
    """A lazily re-keyed heap of members ordered by ``key`` (the id is its last part)."""

    def __init__(
        self,
        members: Iterable[Member],
        key: Callable[[Member], Key],
        full: Callable[[Member], bool] | None = None,
    ) -> None:
        """``full``: whether a member is at capacity (read again when touched), so
        :meth:`free` can count the others without a scan."""
        self._key = key
        self._members = {m.id: m for m in members}
        self._is_full = full
        self._full = {i for i, m in self._members.items() if full(m)} if full else set()
        self._version = dict.fromkeys(self._members, 0)
        self._heap: list[tuple[Key, int, str]] = [(key(m), 0, m.id) for m in self._members.values()]
        heapq.heapify(self._heap)

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._members

    def touch(self, member_id: str) -> None:
        """``member_id``'s key may have changed either way: rank it afresh."""
        member = self._members.get(member_id)
        if member is None:
            return
        version = self._version[member_id] = self._version[member_id] + 1
        if self._is_full is not None:
            if self._is_full(member):
                self._full.add(member_id)
            else:
                self._full.discard(member_id)
        heap = self._heap
        heapq.heappush(heap, (self._key(member), version, member_id))
        if len(heap) > 4 * len(self._members) + 64:  # drop superseded entries
            current = self._version
            heap[:] = [e for e in heap if e[1] == current[e[2]]]
            heapq.heapify(heap)

    def free(self) -> int:
        """How many members are not at capacity (needs ``full``)."""
        return len(self._members) - len(self._full)

    def best(
        self,
        k: int,
        eligible: Callable[[Member], bool],
        resting: Callable[[Member], bool],
        skip: str | None = None,
    ) -> list[Member]:
        """Up to ``k`` members for which ``eligible`` holds, smallest keys first.

        ``resting`` members (at capacity) are dropped until :meth:`touch`\\ ed;
        ``skip`` is left out of the answer but kept in the ranking.
        """
        found: list[Member] = []
        aside: list[tuple[Key, int, str]] = []
        heap = self._heap
        while heap and len(found) < k:
            stored, version, member_id = heapq.heappop(heap)
            if version != self._version[member_id]:
                continue  # superseded by a fresher entry
            member = self._members[member_id]
            key = self._key(member)
            if key != stored:  # grew since it was stored: rank it again
                heapq.heappush(heap, (key, version, member_id))
                continue
            if resting(member):
                continue  # back when touched
            aside.append((key, version, member_id))
            if member_id != skip and eligible(member):
                found.append(member)
        for entry in aside:
            heapq.heappush(heap, entry)
        return found
