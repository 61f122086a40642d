"""Where a member's attributes come from: the CRM, SPE's own settings, or both.

A team can come from the CRM (users or owners, synced), from ``spe.toml``'s
``[[team]]`` tables, or from both at once: the CRM says who is on the team,
their role, time zone and whether they are active, while SPE's settings add
what the CRM does not hold (skills, WIP limits, working hours, the sales
coordinator, holidays, ...). The rule, one place for it:

1. a CRM record *supplies* some attributes (``Inbound.supplies``): those take
   the CRM's values, the others keep what SPE already has (an attribute the
   CRM does not hold is never reset to its default by a sync);
2. an admin's :class:`MemberSettings` then win over both, so what is written
   in ``spe.toml`` is what SPE uses, and a sync never flips it back and forth.

Pure: values in, a member out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from spe_core.errors import InvalidValue
from spe_core.model import Member, Role, id_field, shown

__all__ = ["SETTABLE", "MemberSettings", "merge_member"]

SETTABLE: frozenset[str] = frozenset(a.name for a in attrs.fields(Member)) - {"id"}
"""The member attributes settings (and CRM records) may supply."""


def _values(value: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    given: object = value
    pairs: list[Any] | None
    if isinstance(given, Mapping):
        pairs = list(given.items())
    elif isinstance(given, Iterable) and not isinstance(given, str | bytes):
        pairs = list(given)
    else:
        pairs = None
    if pairs is None or not all(
        isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs
    ):
        raise InvalidValue(
            f"MemberSettings.values must map attribute names to values, got {shown(value)}.",
            "pass a dict such as {'wip_limit': 2, 'skills': ['de']}.",
        )
    out = tuple(sorted(((k, v) for k, v in pairs), key=lambda p: p[0]))
    unknown = sorted({k for k, _ in out} - SETTABLE)
    if unknown:
        raise InvalidValue(
            f"member settings (MemberSettings.values) name unknown attribute "
            f"{shown(unknown[0])}.",
            f"use some of: {', '.join(sorted(SETTABLE))}.",
        )
    return out


@attrs.frozen
class MemberSettings:
    """An admin's values for some of one member's attributes (``spe.toml``'s
    ``[[team]]``); they win over the CRM's and over the defaults."""

    member_id: str = attrs.field(validator=id_field)
    values: tuple[tuple[str, Any], ...] = attrs.field(converter=_values)

    def __attrs_post_init__(self) -> None:
        # every value is checked now, on a stand-in member, not when a sync applies it
        names = {k for k, _ in self.values}
        if len(names) != len(self.values):
            raise InvalidValue(
                f"MemberSettings.values for {self.member_id!r} name an attribute twice.",
                "give each attribute once.",
            )
        values = dict(self.values)
        values.setdefault("name", self.member_id)
        values.setdefault("role", Role.INSIDE_SALES)
        try:
            Member(id=self.member_id, **values)
        except InvalidValue as exc:
            raise InvalidValue(
                f"MemberSettings.values for {self.member_id!r}: {exc.problem}", exc.fix
            ) from None

    def apply(self, member: Member) -> Member:
        """``member`` with these values (:class:`InvalidValue` if one is invalid)."""
        if member.id != self.member_id:
            raise InvalidValue(
                f"settings for member {self.member_id!r} applied to {member.id!r}.",
                "apply each member's settings to that member only.",
            )
        return attrs.evolve(member, **dict(self.values)) if self.values else member


def merge_member(
    stored: Member | None,
    incoming: Member,
    supplies: frozenset[str] | None = None,
    settings: MemberSettings | None = None,
) -> Member:
    """The member SPE keeps when ``incoming`` arrives.

    ``supplies`` names the attributes ``incoming`` carries real values for (None:
    all of them, ``incoming`` replaces ``stored``); the other attributes keep
    ``stored``'s values (``incoming``'s when nothing is stored yet), except
    ``external_ids``, which are merged (the incoming CRM's id updated, other
    CRMs' kept).
    ``settings`` are applied last.
    """
    if stored is None or supplies is None:
        merged = incoming
    else:
        unknown = sorted(supplies - SETTABLE)
        if unknown:
            raise InvalidValue(
                f"a CRM record supplies unknown member attribute {unknown[0]!r}.",
                f"name some of: {', '.join(sorted(SETTABLE))}.",
            )
        values = {name: getattr(incoming, name) for name in supplies - {"external_ids"}}
        # a member's ids in every CRM are kept; the incoming record's are updated
        values["external_ids"] = dict(stored.external_ids) | dict(incoming.external_ids)
        merged = attrs.evolve(stored, **values)
    return merged if settings is None else settings.apply(merged)
