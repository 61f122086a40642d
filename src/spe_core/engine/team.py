"""The team: members, their CRM records merged with an admin's settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from spe_core import model
from spe_core.engine.base import EngineBase, once
from spe_core.events import MemberUpserted
from spe_core.model import Member
from spe_core.team import merge_member

__all__ = ["TeamPart"]


class TeamPart(EngineBase):
    """Members: add, update, read."""

    @once
    def upsert_members(
        self,
        members: Iterable[Member],
        *,
        supplies: Mapping[str, frozenset[str] | None] | None = None,
    ) -> list[Member]:
        """Add or update members; returns the members that changed, as stored
        (unchanged ones are left out: ``len()`` of it is how many changed).

        ``supplies`` (member id -> attribute names) says which attributes a
        member's values hold (a CRM record holds some); the others keep their
        stored values. Members without an entry replace the stored ones whole.
        The engine's ``member_settings`` (an admin's) are applied last
        (:func:`spe_core.team.merge_member`). Safe to run from two processes at
        once: a member both create is created once.
        """
        members = model.check_items(members, Member, "members")
        model.check_supplies(supplies)
        supplies = supplies or {}
        changed: list[Member] = []
        with self.unit() as u:
            tx = u.tx
            for incoming in members:
                stored = u.get_or_lock("member", incoming.id, tx.get_member)
                member = merge_member(
                    stored,
                    incoming,
                    supplies.get(incoming.id),
                    self.member_settings.get(incoming.id),
                )
                if stored != member:
                    tx.put_member(member)
                    u.record(MemberUpserted(at=u.now, member=member))
                    changed.append(member)
        return changed

    @once
    def apply_member_settings(self) -> list[Member]:
        """Apply ``member_settings`` to the stored members they name (e.g. members a
        CRM sync brought in before the settings were written); returns the members
        that changed. Settings for members not stored yet wait for them."""
        with self.unit() as u:
            known = [m for m in u.tx.members() if m.id in self.member_settings]
            return self.upsert_members(known, supplies={m.id: frozenset() for m in known})

    def members(self) -> list[Member]:
        """Every member, by id."""
        with self.unit() as u:
            return u.tx.members()

    def member(self, member_id: str) -> Member:
        """The member with ``member_id`` (:class:`~spe_core.errors.UnknownMember` if none)."""
        model.check_id(member_id, "member_id")
        with self.unit() as u:
            return self._member(u.tx, member_id)
