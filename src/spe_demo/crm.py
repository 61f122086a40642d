"""The demo's CRM: a Salesforce or HubSpot emulator in this process, seeded for SPE.

Each class starts its emulator on 127.0.0.1 (sharing the demo's fake clock),
puts the demo team, Promotions' leads and a few calendar entries into it, and
hands out the real adapter configured against it. Only the demo uses this;
integrators use the emulators' own fixtures (``spe_adapters.*.testing``).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from spe_core.model import Member, OpportunityStatus

__all__ = ["DemoCrm", "HubSpotDemo", "SalesforceDemo", "start_crm"]

_RATING = {2: "Hot", 1: "Warm", 0: "Cold"}


class DemoCrm(Protocol):
    """What the demo needs from its CRM."""

    name: str

    def add_member(self, member: Member) -> str:
        """Create the person in the CRM; returns their CRM id."""
        ...

    def add_backlog(self, account: str, tier: int, score: float, campaign: str) -> str:
        """A record Promotions produced, handed to SPE's backlog."""
        ...

    def add_busy(self, owner: str, title: str, start: datetime, end: datetime) -> str:
        """An appointment already in a salesperson's calendar."""
        ...

    def adapter(self) -> Any:
        """The real adapter, configured against the emulator."""
        ...

    def statuses(self) -> dict[str, tuple[str | None, str | None]]:
        """CRM id -> (SPE status the CRM shows, owner CRM id) of every queued record."""
        ...

    def counts(self) -> Counter[str]:
        """How many records of each kind the CRM holds."""
        ...

    def stop(self) -> None:
        """Stop the emulator."""
        ...


class SalesforceDemo:
    """The Salesforce emulator (HTTPS, its own CA) with the real simple-salesforce adapter."""

    name = "salesforce"

    def __init__(self, clock: Callable[[], datetime]) -> None:
        from spe_adapters.salesforce.emulator import EmulatorServer

        self.server = EmulatorServer(clock=clock).start()
        self.org = self.server.org
        self.org.add_login("spe@demo.example", "demo-password")
        # demo-only credentials, read by the adapter from the environment like real ones
        os.environ["SPE_DEMO_SF_USERNAME"] = "spe@demo.example"
        os.environ["SPE_DEMO_SF_PASSWORD"] = "demo-password"
        os.environ["SPE_DEMO_SF_TOKEN"] = ""
        os.environ["SPE_DEMO_SF_CLIENT_ID"] = "spe-demo"
        os.environ["SPE_DEMO_SF_CLIENT_SECRET"] = "spe-demo-secret"

    def add_member(self, member: Member) -> str:
        values: dict[str, Any] = {
            "Name": member.name,
            "Username": f"{member.id}@demo.example",
            "SPE_Role__c": member.role.value,
            "IsActive": True,
            "TimeZoneSidKey": member.time_zone,
        }
        if member.home_base is not None:
            values["Latitude"] = member.home_base.lat
            values["Longitude"] = member.home_base.lon
            values["City"] = member.home_base.address
        return str(self.org.create("User", values))

    def add_backlog(self, account: str, tier: int, score: float, campaign: str) -> str:
        return str(
            self.org.create(
                "Lead",
                {
                    "LastName": f"Contact at {account}",
                    "Company": account,
                    "Rating": _RATING[tier],
                    "LeadSource": campaign,
                    "SPE_Status__c": "Backlog",
                },
            )
        )

    def add_busy(self, owner: str, title: str, start: datetime, end: datetime) -> str:
        return str(
            self.org.create(
                "Event",
                {
                    "Subject": title,
                    "OwnerId": owner,
                    "StartDateTime": start.isoformat(),
                    "EndDateTime": end.isoformat(),
                },
            )
        )

    def adapter(self) -> Any:
        from spe_adapters.salesforce.adapter import SalesforceAdapter
        from spe_adapters.salesforce.settings import SalesforceSettings

        settings = SalesforceSettings(
            login_url=self.server.url,
            ca_bundle=self.server.ca_path,
            username_env="SPE_DEMO_SF_USERNAME",
            password_env="SPE_DEMO_SF_PASSWORD",
            security_token_env="SPE_DEMO_SF_TOKEN",
            client_id_env="SPE_DEMO_SF_CLIENT_ID",
            client_secret_env="SPE_DEMO_SF_CLIENT_SECRET",
        )
        return SalesforceAdapter(settings)

    def statuses(self) -> dict[str, tuple[str | None, str | None]]:
        from spe_adapters.salesforce.settings import FieldMap

        fields = FieldMap()
        return {
            crm_id: (fields.status_from_crm(r.get("SPE_Status__c")), r.get("OwnerId"))
            for crm_id, r in self.org.records["Lead"].items()
        }

    def counts(self) -> Counter[str]:
        return Counter(
            {
                "leads": len(self.org.records["Lead"]),
                "tasks": len(self.org.records["Task"]),
                "events by SPE": sum(
                    1 for e in self.org.records["Event"].values() if e.get("SPE_Key__c")
                ),
                "API calls": sum(self.server.requests.counts().values()),
            }
        )

    def stop(self) -> None:
        self.server.stop()


class HubSpotDemo:
    """The HubSpot emulator with the real hubspot-api-client adapter."""

    name = "hubspot"

    def __init__(self, clock: Callable[[], datetime]) -> None:
        from spe_adapters.hubspot.emulator import EmulatorServer

        self.server = EmulatorServer(clock=clock).start()
        self.portal = self.server.portal
        self.portal.add_token("pat-spe-demo")
        os.environ["SPE_DEMO_HUBSPOT_TOKEN"] = "pat-spe-demo"
        self.home_bases: dict[str, dict[str, Any]] = {}

    def add_member(self, member: Member) -> str:
        first, _, last = member.name.partition(" ")
        email = f"{member.id}@demo.example"
        owner = str(self.portal.add_owner(first, last, email, teams=[member.role.value]))
        if member.home_base is not None:
            base = member.home_base
            self.home_bases[owner] = {"lat": base.lat, "lon": base.lon, "address": base.address}
        return owner

    def add_backlog(self, account: str, tier: int, score: float, campaign: str) -> str:
        return str(
            self.portal.create(
                "deals",
                {
                    "dealname": f"Deal with {account}",
                    "pipeline": "default",
                    "dealstage": "appointmentscheduled",
                    "spe_account": account,
                    "spe_tier": str(tier),
                    "spe_score": str(score),
                    "spe_status": "backlog",
                },
            )
        )

    def add_busy(self, owner: str, title: str, start: datetime, end: datetime) -> str:
        return str(
            self.portal.create(
                "meetings",
                {
                    "hs_meeting_title": title,
                    "hubspot_owner_id": owner,
                    "hs_meeting_start_time": start.isoformat(),
                    "hs_meeting_end_time": end.isoformat(),
                },
            )
        )

    def adapter(self) -> Any:
        from spe_adapters.hubspot.adapter import HubSpotAdapter
        from spe_adapters.hubspot.settings import HubSpotSettings
        from spe_core.model import Role

        settings = HubSpotSettings(
            host=self.server.url,
            access_token_env="SPE_DEMO_HUBSPOT_TOKEN",
            team_roles={r.value: r.value for r in Role},
            home_bases=self.home_bases,
            default_time_zone="Europe/Berlin",
        )
        return HubSpotAdapter(settings)

    def statuses(self) -> dict[str, tuple[str | None, str | None]]:
        from spe_adapters.hubspot.settings import FieldMap

        fields = FieldMap()
        out: dict[str, tuple[str | None, str | None]] = {}
        for crm_id in list(self.portal.objects["deals"]):
            props = self.portal.get("deals", crm_id) or {}
            out[crm_id] = (
                fields.status_from_crm(props.get("spe_status")),
                props.get("hubspot_owner_id") or None,
            )
        return out

    def counts(self) -> Counter[str]:
        return Counter(
            {
                "deals": len(self.portal.objects["deals"]),
                "tasks": len(self.portal.objects["tasks"]),
                "meetings by SPE": sum(1 for m in self.portal.all("meetings") if m.get("spe_key")),
                "API calls": sum(self.server.requests.counts().values()),
            }
        )

    def stop(self) -> None:
        self.server.stop()


def start_crm(name: str, clock: Callable[[], datetime]) -> DemoCrm:
    """Start the named demo CRM (``salesforce`` or ``hubspot``)."""
    if name == "salesforce":
        return SalesforceDemo(clock)
    if name == "hubspot":
        return HubSpotDemo(clock)
    raise ValueError(name)


def disagreements(crm: DemoCrm, engine: Any) -> list[str]:
    """Records where the CRM's status or owner differs from SPE's state (should be none)."""
    shown = crm.statuses()
    out = []
    for opp in engine.store.opportunities():
        crm_id = opp.external_id(crm.name)
        if crm_id is None or crm_id not in shown:
            continue
        status, owner = shown[crm_id]
        expected = (
            opp.outcome.value if opp.status is OpportunityStatus.RESOLVED else (opp.status.value)
        )
        if status != expected:
            out.append(f"{opp.id}: SPE {expected}, CRM {status}")
        elif opp.status is OpportunityStatus.RELEASED and owner != opp.owner_id:
            out.append(f"{opp.id}: SPE owner {opp.owner_id}, CRM owner {owner}")
    return out


def random_campaign(rng: random.Random, crm: str) -> str:
    """A lead source the CRM knows."""
    if crm == "hubspot":
        return rng.choice(["ORGANIC_SEARCH", "PAID_SEARCH", "REFERRALS", "EMAIL_MARKETING"])
    return rng.choice(["Web", "Webinar", "Trade Show", "Referral"])
