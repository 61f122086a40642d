"""Salesforce adapter settings: connection, authentication and field mapping.

Every default follows the table in the design: the queued object is a Lead
(or an Opportunity) with ``SPE_Status__c``; SPE's key lives in the external-id
field ``SPE_Key__c``; a User's SPE role comes from ``SPE_Role__c`` or from the
``roles`` table in the configuration. Secrets are never stored here: only the
*names* of the environment variables that hold them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

from spe_core.errors import ConfigError
from spe_core.model import Role

__all__ = [
    "DEFAULT_STATUS_VALUES",
    "PRODUCTION_LOGIN",
    "SANDBOX_LOGIN",
    "FieldMap",
    "SalesforceSettings",
]

PRODUCTION_LOGIN = "https://login.salesforce.com"
SANDBOX_LOGIN = "https://test.salesforce.com"
AUTH_KINDS = ("session", "password", "jwt", "client_credentials")

#: SPE status (and outcome) -> the ``SPE_Status__c`` picklist value.
DEFAULT_STATUS_VALUES: Mapping[str, str] = {
    "backlog": "Backlog",
    "queued": "Queued",
    "released": "Released",
    "won": "Won",
    "lost": "Lost",
    "disqualified": "Disqualified",
    "appointment_set": "Appointment Set",
    "nurture": "Nurture",
    "expired": "Expired",
}

RATING_TIERS: Mapping[str, int] = {"hot": 2, "warm": 1, "cold": 0}


def _mapping(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen
class FieldMap:
    """Which Salesforce object and fields hold SPE's data."""

    queued_object: Literal["Lead", "Opportunity"] = "Lead"
    key_field: str = "SPE_Key__c"
    status_field: str = "SPE_Status__c"
    released_at_field: str = "SPE_Released_At__c"
    role_field: str | None = "SPE_Role__c"
    tier_field: str | None = None
    """A number field holding the tier; None: derive it from Lead ``Rating`` (Hot 2, Warm 1,
    Cold 0), or 0 for Opportunities."""
    score_field: str | None = None
    campaign_field: str | None = None
    """Default: ``LeadSource`` on Lead and Opportunity."""
    skills_field: str | None = None
    """A text field of comma-separated skills the opportunity requires (e.g. languages)."""
    task_kind_field: str | None = "SPE_Kind__c"
    """The Task picklist naming the SPE task kind; Tasks with it set are routed by SPE.
    None: do not sync Tasks."""
    calendar_events: bool = True
    """Read members' Events as busy time and write SPE's bookings as Events (upserted
    by ``key_field`` on Event). False: no calendar sync (then set [calendar]
    busy_max_age_hours = 0, or SPE cannot know when field members are free)."""
    status_values: dict[str, str] = attrs.field(
        factory=lambda: dict(DEFAULT_STATUS_VALUES), converter=_mapping
    )

    def __attrs_post_init__(self) -> None:
        if self.queued_object not in ("Lead", "Opportunity"):
            raise ConfigError(
                f"[adapter.salesforce.fields] queued_object {self.queued_object!r} "
                "is not supported.",
                "use 'Lead' or 'Opportunity'.",
            )
        missing = sorted(set(DEFAULT_STATUS_VALUES) - set(self.status_values))
        if missing:
            raise ConfigError(
                f"[adapter.salesforce.fields.status_values] has no picklist value for: "
                f"{', '.join(missing)}.",
                "map every SPE status to a value of your SPE_Status__c picklist.",
            )

    @property
    def account_field(self) -> str:
        """The field naming the account: ``Company`` on Lead, ``AccountId`` on Opportunity."""
        return "Company" if self.queued_object == "Lead" else "AccountId"

    @property
    def campaign(self) -> str:
        """The field holding the source campaign."""
        return self.campaign_field or "LeadSource"

    def status_from_crm(self, value: str | None) -> str | None:
        """The SPE status a picklist value stands for (case-insensitive), or None."""
        if value is None:
            return None
        wanted = value.strip().lower()
        for spe, crm in self.status_values.items():
            if crm.lower() == wanted:
                return spe
        return None


@attrs.frozen
class SalesforceSettings:
    """How to reach the org and read its data.

    ``auth``: ``session`` (an existing session id and instance URL), ``password``
    (OAuth username-password flow), ``jwt`` (OAuth JWT bearer flow, with a
    connected app's consumer key and private key) or ``client_credentials``
    (OAuth client credentials flow: the connected app's consumer key and secret,
    running as the app's "Run As" user; only through a My Domain login_url).
    The token exchange goes to ``login_url``: production
    ``https://login.salesforce.com``, sandboxes ``https://test.salesforce.com``,
    a My Domain URL, or an emulator.

    The JWT's audience is never ``login_url`` itself: Salesforce accepts only
    ``https://login.salesforce.com`` (production), ``https://test.salesforce.com``
    (sandbox) or an Experience Cloud site URL (``community_url``). ``environment``
    picks between the first two; by default it follows ``login_url``'s kind
    (test.salesforce.com and sandbox My Domains, ``acme--uat.sandbox.my.salesforce.com``
    or ``acme--uat.my.salesforce.com``, are sandboxes; everything else, the emulator
    included, is production).
    """

    auth: Literal["session", "password", "jwt", "client_credentials"] = "password"
    login_url: str = PRODUCTION_LOGIN
    environment: Literal["production", "sandbox"] | None = None
    """``production`` or ``sandbox``: which audience the JWT bearer flow names. None:
    from ``login_url`` (see :attr:`org_environment`)."""
    community_url: str | None = None
    """An Experience Cloud site URL (``https://acme.my.site.com/customers``): the JWT's
    audience when the integration user logs in through the site."""
    instance_url: str | None = None
    api_version: str = "59.0"
    session_id_env: str = "SF_SESSION_ID"
    username_env: str = "SF_USERNAME"
    password_env: str = "SF_PASSWORD"
    security_token_env: str = "SF_SECURITY_TOKEN"
    client_id_env: str = "SF_CLIENT_ID"
    client_secret_env: str = "SF_CLIENT_SECRET"
    private_key_file_env: str = "SF_PRIVATE_KEY_FILE"
    ca_bundle: str | None = None
    """A PEM file of certificate authorities to trust (for an emulator or a proxy)."""
    timeout_seconds: float = 30.0
    query_page_size: int = 2000
    slow_down_at: float = 0.90
    """Above this share of the daily API limit the adapter pauses between calls."""
    stop_at: float = 0.98
    """Above this share it stops and reports a transient error until the limit resets."""
    queue_owner_id: str | None = None
    """The User or Queue id that owns records waiting in SPE's queue; records given back
    or whose lease expired return to it. None: leave the owner as it is."""
    roles: dict[str, str] = attrs.field(factory=dict, converter=_mapping)
    """User Id or Username -> SPE role, overriding ``SPE_Role__c``."""
    fields: FieldMap = attrs.field(factory=FieldMap)

    def __attrs_post_init__(self) -> None:
        if self.auth not in AUTH_KINDS:
            raise ConfigError(
                f"[adapter.salesforce] auth {self.auth!r} is not supported.",
                "use 'session', 'password', 'jwt' or 'client_credentials'.",
            )
        if self.environment not in (None, "production", "sandbox"):
            raise ConfigError(
                f"[adapter.salesforce] environment {self.environment!r} is not supported.",
                "use 'production' or 'sandbox' (or leave it out: it follows login_url).",
            )
        if self.community_url is not None and not self.community_url.startswith("https://"):
            raise ConfigError(
                f"[adapter.salesforce] community_url {self.community_url!r} must use https.",
                "give the Experience Cloud site URL, e.g. https://acme.my.site.com/customers.",
            )
        if self.auth == "client_credentials" and _host(self.login_url) in (
            _host(PRODUCTION_LOGIN),
            _host(SANDBOX_LOGIN),
        ):
            # OAuth 2.0 Client Credentials Flow for Server-to-Server Integration: the
            # token request goes to the org's My Domain, not login/test.salesforce.com
            raise ConfigError(
                "[adapter.salesforce] auth = 'client_credentials' needs the org's My Domain "
                f"as login_url, not {self.login_url}.",
                "set login_url = 'https://yourdomain.my.salesforce.com' (Setup > My Domain).",
            )
        if self.auth == "session" and not self.instance_url:
            raise ConfigError(
                "[adapter.salesforce] auth = 'session' needs instance_url.",
                "set instance_url = 'https://yourdomain.my.salesforce.com'.",
            )
        if not self.login_url.startswith("https://"):
            raise ConfigError(
                f"[adapter.salesforce] login_url {self.login_url!r} must use https.",
                "use https://login.salesforce.com, https://test.salesforce.com or your "
                "My Domain URL.",
            )
        if not 200 <= self.query_page_size <= 2000:
            raise ConfigError(
                f"[adapter.salesforce] query_page_size {self.query_page_size} is outside "
                "200..2000.",
                "Salesforce pages queries in 200 to 2000 records; use 2000 for the fewest calls.",
            )
        for user, role in self.roles.items():
            try:
                Role.parse(role)
            except Exception:
                raise ConfigError(
                    f"[adapter.salesforce.roles] {user!r} has role {role!r}, not an SPE role.",
                    f"use one of: {', '.join(r.value for r in Role)}.",
                ) from None

    @property
    def org_environment(self) -> Literal["production", "sandbox"]:
        """``environment``, or the kind of org ``login_url`` points at."""
        if self.environment is not None:
            return self.environment
        host = _host(self.login_url)
        if host == _host(SANDBOX_LOGIN) or host.endswith(".sandbox.my.salesforce.com"):
            return "sandbox"
        if host.endswith(".my.salesforce.com") and "--" in host.split(".")[0]:
            return "sandbox"  # a sandbox My Domain without enhanced domains: acme--uat.my...
        return "production"

    @property
    def jwt_audience(self) -> str:
        """The ``aud`` of the JWT bearer assertion: the community URL when set, else
        login.salesforce.com or test.salesforce.com by environment (never the My Domain)."""
        if self.community_url:
            return self.community_url.rstrip("/")
        return SANDBOX_LOGIN if self.org_environment == "sandbox" else PRODUCTION_LOGIN

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> SalesforceSettings:
        """Settings from the ``[adapter.salesforce]`` table of spe.toml (validated)."""
        data = dict(options)
        fields = data.pop("fields", {}) or {}
        known = {a.name for a in attrs.fields(cls)} - {"fields"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"[adapter.salesforce] {unknown[0]} is not a known setting.",
                f"known settings: {', '.join(sorted(known | {'fields'}))}.",
            )
        field_names = {a.name for a in attrs.fields(FieldMap)}
        unknown = sorted(set(fields) - field_names)
        if unknown:
            raise ConfigError(
                f"[adapter.salesforce.fields] {unknown[0]} is not a known field setting.",
                f"known: {', '.join(sorted(field_names))}.",
            )
        try:
            return cls(fields=FieldMap(**fields), **data)
        except TypeError as exc:
            raise ConfigError(f"[adapter.salesforce]: {exc}.", "check the value types.") from None

    def secret(self, env: str, what: str) -> str:
        """The value of the environment variable ``env`` (never logged)."""
        value = os.environ.get(env)
        if not value:
            raise ConfigError(
                f"the Salesforce {what} is not set: environment variable {env} is empty.",
                f"export {env}=... in the environment that runs spe (never in spe.toml).",
            )
        return value


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()
