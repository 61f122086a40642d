"""Where member attributes come from: the CRM supplies some, spe.toml's settings win."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spe_core import Engine, Member
from spe_core.config import load
from spe_core.errors import ConfigError, InvalidValue
from spe_core.events import MemberUpserted
from spe_core.model import Location, Role
from spe_core.plugins import Plugins
from spe_core.store.base import Store
from spe_core.team import SETTABLE, MemberSettings, merge_member
from spe_core.testing import FakeClock

names = st.text("abcdefgh ", min_size=1, max_size=8).filter(lambda s: s.strip())
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"])
places = st.builds(Location, st.floats(-60, 60), st.floats(-170, 170))


def members(member_id: str = "m1") -> st.SearchStrategy[Member]:
    return st.builds(
        Member,
        id=st.just(member_id),
        name=names,
        role=st.sampled_from(list(Role)),
        skills=st.frozensets(st.sampled_from(["de", "fr", "en"])),
        time_zone=zones,
        wip_limit=st.none() | st.integers(1, 5),
        active=st.booleans(),
        weight=st.sampled_from([0.5, 1.0, 2.0]),
        home_base=st.none() | places,
        coordinator_id=st.none() | st.sampled_from(["c1", "c2"]),
        external_ids=st.dictionaries(st.sampled_from(["salesforce", "hubspot"]), names),
    )


ATTRS = sorted(SETTABLE - {"external_ids"})


@given(
    stored=members(),
    incoming=members(),
    supplies=st.frozensets(st.sampled_from(sorted(SETTABLE))),
    overrides=members(),
    overridden=st.frozensets(st.sampled_from(ATTRS)),
)
def test_merge_takes_supplied_attributes_keeps_the_rest_and_settings_win(
    stored: Member,
    incoming: Member,
    supplies: frozenset[str],
    overrides: Member,
    overridden: frozenset[str],
) -> None:
    settings = MemberSettings("m1", {name: getattr(overrides, name) for name in overridden})
    merged = merge_member(stored, incoming, supplies, settings)
    for name in ATTRS:
        if name in overridden:
            expected = getattr(overrides, name)
        elif name in supplies:
            expected = getattr(incoming, name)
        else:
            expected = getattr(stored, name)
        assert getattr(merged, name) == expected, name
    # every CRM's id is kept; the incoming record's CRM ids win
    assert dict(merged.external_ids) == dict(stored.external_ids) | dict(incoming.external_ids)
    # applying the same record again changes nothing (a re-read is harmless)
    assert merge_member(merged, incoming, supplies, settings) == merged


@given(stored=members(), incoming=members())
def test_a_record_that_supplies_everything_replaces_the_member(
    stored: Member, incoming: Member
) -> None:
    assert merge_member(stored, incoming) == incoming
    assert merge_member(None, incoming, frozenset({"name"})) == incoming


def test_unknown_or_invalid_settings_are_refused_with_the_fix() -> None:
    with pytest.raises(InvalidValue, match="unknown attribute 'colour'"):
        MemberSettings("m1", {"colour": "red"})
    with pytest.raises(InvalidValue, match="weight"):
        MemberSettings("m1", {"weight": -1}).apply(Member("m1", "Ana", "inside_sales"))
    with pytest.raises(InvalidValue, match="applied to"):
        MemberSettings("m1", {}).apply(Member("m2", "Ben", "inside_sales"))
    with pytest.raises(InvalidValue, match="unknown member attribute 'shoe_size'"):
        merge_member(
            Member("m1", "Ana", "inside_sales"),
            Member("m1", "Ana", "inside_sales"),
            frozenset({"shoe_size"}),
        )


def test_engine_applies_settings_to_synced_members_and_records_only_real_changes(
    store: Store, clock: FakeClock
) -> None:
    settings = MemberSettings("005A", {"skills": {"de"}, "coordinator_id": "005C", "wip_limit": 2})
    engine = Engine(
        store, clock=clock, plugins=Plugins.create(entry_points=False), member_settings=[settings]
    )
    crm = Member("005A", "Fay Berg", "field_sales", external_ids={"salesforce": "005A"})
    supplies = {"005A": frozenset({"name", "role", "active", "external_ids"})}
    assert len(engine.upsert_members([crm], supplies=supplies)) == 1
    fay = engine.member("005A")
    assert (fay.skills, fay.coordinator_id, fay.wip_limit) == (frozenset({"de"}), "005C", 2)
    # the CRM renames her: the name changes, the settings stay; a re-read is no change
    renamed = attrs.evolve(crm, name="Fay Berg-Lind")
    assert engine.upsert_members([renamed], supplies=supplies) == [engine.member(renamed.id)]
    assert engine.upsert_members([renamed], supplies=supplies) == []
    fay = engine.member("005A")
    assert fay.name == "Fay Berg-Lind" and fay.coordinator_id == "005C"
    # a member stored before the settings were written gets them on apply
    store_only = Member("005B", "Ben", "inside_sales")
    engine.upsert_members([store_only])
    engine.member_settings["005B"] = MemberSettings("005B", {"skills": ["fr"]})
    assert len(engine.apply_member_settings()) == 1
    assert engine.apply_member_settings() == []
    assert engine.member("005B").skills == {"fr"}
    upserts = [r.event for r in store.events() if isinstance(r.event, MemberUpserted)]
    assert len(upserts) == 4


def test_team_tables_without_name_and_role_are_settings_for_crm_members(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spe.toml"
    path.write_text(
        '[[team]]\nid = "ana"\nname = "Ana"\nrole = "inside_sales"\n'
        '[[team]]\nid = "0055g00000FAY"\nskills = ["de"]\ncoordinator_id = "0055g00000KAI"\n'
        'hours = "07:30-16:00"\nhome_base = { lat = 48.14, lon = 11.58, address = "Munich" }\n'
    )
    cfg = load(path)
    assert [m.id for m in cfg.team] == ["ana"]
    settings = {s.member_id: dict(s.values) for s in cfg.member_settings}
    assert set(settings) == {"ana", "0055g00000FAY"}
    fay = settings["0055g00000FAY"]
    assert set(fay) == {"skills", "coordinator_id", "working_hours", "home_base"}
    assert fay["home_base"].address == "Munich"
    path.write_text('[[team]]\nid = "x"\nname = "X"\n')
    with pytest.raises(ConfigError, match="has no role") as info:
        load(path)
    assert "leave both out" in (info.value.fix or "")
    path.write_text('[[team]]\nid = "x"\nwip_limit = 0\n')
    with pytest.raises(ConfigError, match=r"\[\[team\]\] #1 \(x\).*wip_limit"):
        load(path)
    path.write_text('[[team]]\nskills = ["de"]\n')
    with pytest.raises(ConfigError, match="has no id"):
        load(path)
