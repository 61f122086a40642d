"""Salesforce field mapping and settings: pure translation, no network."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spe_adapters.salesforce import mapping
from spe_adapters.salesforce.settings import FieldMap, SalesforceSettings
from spe_core.adapter import Change
from spe_core.errors import ConfigError, MappingError
from spe_core.model import Role

SETTINGS = SalesforceSettings(queue_owner_id="00G000000000001AAA")


def lead(**kw: object) -> dict[str, object]:
    record: dict[str, object] = {
        "Id": "00Q000000000001AAA",
        "OwnerId": "005000000000001AAA",
        "CreatedDate": "2026-01-05T08:00:00.000+0000",
        "SystemModstamp": "2026-01-05T09:00:00.000+0000",
        "SPE_Key__c": None,
        "SPE_Status__c": "Queued",
        "Company": "Acme GmbH",
        "LeadSource": "Webinar",
        "Rating": "Hot",
    }
    record.update(kw)
    return record


def test_lead_maps_onto_a_queued_opportunity() -> None:
    inbound = mapping.opportunity_from_record(lead(), SETTINGS)
    opp = inbound.value
    assert opp.id == "sf-00Q000000000001AAA"
    assert opp.account_id == "Acme GmbH"
    assert opp.tier == 2
    assert opp.source_campaign == "Webinar"
    assert opp.queued_at == datetime(2026, 1, 5, 8, tzinfo=UTC)
    assert opp.external_id("salesforce") == "00Q000000000001AAA"
    assert inbound.crm_status == "queued"
    assert inbound.crm_owner == "005000000000001AAA"
    keyed = mapping.opportunity_from_record(lead(SPE_Key__c="spe-42"), SETTINGS)
    assert keyed.value.id == "spe-42"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"Company": None}, "has no Company"),
        ({"CreatedDate": "yesterday"}, "malformed CreatedDate"),
        ({"CreatedDate": None}, "has no CreatedDate"),
    ],
)
def test_bad_leads_raise_mapping_errors_with_a_fix(change: dict[str, object], words: str) -> None:
    with pytest.raises(MappingError, match=words) as info:
        mapping.opportunity_from_record(lead(**change), SETTINGS)
    assert "Fix:" in str(info.value)


def test_custom_fields_for_tier_score_and_skills() -> None:
    settings = SalesforceSettings(
        fields=FieldMap(tier_field="Tier__c", score_field="Score__c", skills_field="Languages__c")
    )
    opp = mapping.opportunity_from_record(
        lead(Tier__c=3, Score__c="71.5", Languages__c="de, fr"), settings
    ).value
    assert (opp.tier, opp.score, opp.required_skills) == (3, 71.5, {"de", "fr"})
    with pytest.raises(MappingError, match="non-numeric Score__c"):
        mapping.opportunity_from_record(lead(Score__c="lots"), settings)


def test_users_map_onto_members_with_roles_from_config_or_field() -> None:
    user = {
        "Id": "005A",
        "Name": "Ana Ruiz",
        "Username": "ana@acme.example",
        "IsActive": True,
        "TimeZoneSidKey": "Europe/Berlin",
        "SPE_Role__c": "Inside Sales",
    }
    member = mapping.member_from_user(user, SETTINGS)
    assert (member.id, member.role, member.time_zone) == (
        "005A",
        Role.INSIDE_SALES,
        "Europe/Berlin",
    )
    by_config = SalesforceSettings(roles={"ana@acme.example": "field_sales"})
    assert mapping.member_from_user(user, by_config).role is Role.FIELD_SALES
    with pytest.raises(MappingError, match="has no SPE role"):
        mapping.member_from_user({**user, "SPE_Role__c": None}, SETTINGS)
    with pytest.raises(MappingError, match="not an SPE role"):
        mapping.member_from_user({**user, "SPE_Role__c": "closer"}, SETTINGS)


def test_changes_become_collection_records() -> None:
    at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    released = Change(
        "opportunity",
        "sf-1",
        {"status": "released", "owner": "005A", "released_at": at},
        crm_id="00Q1",
    )
    assert mapping.record_from_change(released, SETTINGS) == {
        "attributes": {"type": "Lead"},
        "Id": "00Q1",
        "SPE_Key__c": "sf-1",
        "SPE_Status__c": "Released",
        "OwnerId": "005A",
        "SPE_Released_At__c": "2026-01-05T09:30:00.000Z",
    }
    back = Change(
        "opportunity",
        "sf-1",
        {"status": "queued", "owner": None, "released_at": None},
        crm_id="00Q1",
    )
    record = mapping.record_from_change(back, SETTINGS)
    assert record["OwnerId"] == "00G000000000001AAA"  # back to the queue's owner
    assert record["SPE_Released_At__c"] is None
    created = Change("opportunity", "spe-9", {"status": "queued", "account_id": "Initech"})
    record = mapping.record_from_change(created, SETTINGS)
    assert (record["Company"], record["LastName"]) == ("Initech", "Initech")
    assert "Id" not in record
    won = Change("opportunity", "spe-9", {"status": "appointment_set"}, crm_id="00Q9")
    assert mapping.record_from_change(won, SETTINGS)["SPE_Status__c"] == "Appointment Set"


def test_settings_validation_names_the_key() -> None:
    with pytest.raises(ConfigError, match="queued_object 'Case'"):
        FieldMap(queued_object="Case")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no picklist value for: won"):
        FieldMap(status_values={k: v for k, v in FieldMap().status_values.items() if k != "won"})
    with pytest.raises(ConfigError, match="needs instance_url"):
        SalesforceSettings(auth="session")
    with pytest.raises(ConfigError, match="must use https"):
        SalesforceSettings(login_url="http://login.salesforce.com")
    with pytest.raises(ConfigError, match="not an SPE role"):
        SalesforceSettings(roles={"005A": "closer"})


def test_missing_secrets_name_the_variable_not_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SF_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="SF_PASSWORD") as info:
        SETTINGS.secret("SF_PASSWORD", "password")
    assert "export SF_PASSWORD" in str(info.value)


def test_status_picklist_values_map_back_case_insensitively() -> None:
    fields = FieldMap()
    assert fields.status_from_crm("appointment set") == "appointment_set"
    assert fields.status_from_crm("QUEUED") == "queued"
    assert fields.status_from_crm("Something else") is None
    assert fields.status_from_crm(None) is None
