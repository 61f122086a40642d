"""The Salesforce adapter's logins (JWT audience, sandbox, client credentials), check(),
millisecond datetimes, whole-request collection errors and deleted Tasks: the real
simple-salesforce client over real HTTPS against the emulator."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import requests

from spe_adapters.salesforce.adapter import SalesforceAdapter, http_session
from spe_adapters.salesforce.emulator import EmulatorServer
from spe_adapters.salesforce.settings import FieldMap, SalesforceSettings
from spe_core import Engine, open_store
from spe_core.adapter import Change, CheckStatus
from spe_core.errors import AuthenticationFailed, BatchRejected, ConfigError
from spe_core.model import TaskStatus
from spe_core.plugins import Plugins
from spe_core.sync import SyncEngine
from spe_core.testing import FakeClock

SECRET = "s3cret-Pa55word!"
USER = "integration@acme.example"
APP = "spe-connected-app"
MONDAY_10 = datetime(2026, 1, 5, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    clock = FakeClock(MONDAY_10)
    emulator = EmulatorServer(clock=clock.now).start()
    emulator.clock = clock  # type: ignore[attr-defined]
    yield emulator
    emulator.stop()


@pytest.fixture
def sf(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    server.org.reset()
    server.requests.reset_counts()
    server.clock.set(MONDAY_10)  # type: ignore[attr-defined]
    server.org.add_login(USER, SECRET)
    for name, value in {
        "SF_USERNAME": USER,
        "SF_PASSWORD": SECRET,
        "SF_SECURITY_TOKEN": "",
        "SF_CLIENT_ID": APP,
        "SF_CLIENT_SECRET": "app-secret",
    }.items():
        monkeypatch.setenv(name, value)
    return server


def adapter_for(server: EmulatorServer, **kw: Any) -> SalesforceAdapter:
    settings = SalesforceSettings(login_url=server.url, ca_bundle=server.ca_path, **kw)
    return SalesforceAdapter(settings, sleep=lambda s: None)


def sent_bodies(adapter: SalesforceAdapter) -> list[bytes | str]:
    """Every request body the adapter's HTTP session sends (through a response hook)."""
    bodies: list[bytes | str] = []

    def keep(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        bodies.append(response.request.body or b"")

    adapter.http.hooks["response"].append(keep)
    return bodies


def add_user(sf: EmulatorServer, name: str, role: str) -> str:
    return sf.org.create(
        "User",
        {
            "Name": name,
            "Username": f"{name.split()[0].lower()}@acme.example",
            "SPE_Role__c": role,
            "IsActive": True,
        },
    )


@pytest.fixture
def app_key(sf: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A connected app with a certificate for the JWT bearer flow; returns the private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sf.org.add_jwt_app(APP, public.decode())
    (tmp_path / "app.key").write_bytes(private)
    monkeypatch.setenv("SF_PRIVATE_KEY_FILE", str(tmp_path / "app.key"))
    return private.decode()


# --- the JWT audience ---------------------------------------------------------------------


def test_the_jwt_audience_follows_the_environment_never_the_my_domain() -> None:
    def aud(**kw: Any) -> str:
        return SalesforceSettings(auth="jwt", **kw).jwt_audience

    assert aud() == "https://login.salesforce.com"
    assert aud(login_url="https://acme.my.salesforce.com") == "https://login.salesforce.com"
    assert aud(login_url="https://test.salesforce.com") == "https://test.salesforce.com"
    sandbox = "https://acme--uat.sandbox.my.salesforce.com"
    assert aud(login_url=sandbox) == "https://test.salesforce.com"
    assert aud(login_url="https://acme--uat.my.salesforce.com") == "https://test.salesforce.com"
    assert (
        aud(login_url="https://acme.my.salesforce.com", environment="sandbox")
        == "https://test.salesforce.com"
    )
    site = "https://acme.my.site.com/partners/"
    assert aud(login_url="https://acme.my.salesforce.com", community_url=site) == site[:-1]
    with pytest.raises(ConfigError, match="environment"):
        SalesforceSettings(environment="staging")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="community_url"):
        SalesforceSettings(community_url="http://acme.my.site.com")


def test_jwt_login_through_a_my_domain_names_login_salesforce_com(
    sf: EmulatorServer, app_key: str
) -> None:
    """The emulator stands for a production org's My Domain: the assertion the adapter
    sends there names https://login.salesforce.com, and one naming the My Domain host
    (what the adapter used to send) is refused as Salesforce refuses it."""
    add_user(sf, "Ana Ruiz", "inside_sales")
    adapter = adapter_for(sf, auth="jwt")
    bodies = sent_bodies(adapter)
    assert [len(p) for p in adapter.read("members", None)] == [1]
    form = parse_qs(bodies[0] if isinstance(bodies[0], str) else bodies[0].decode())
    claims = jwt.decode(form["assertion"][0], options={"verify_signature": False})
    assert claims["aud"] == "https://login.salesforce.com"
    assert (claims["iss"], claims["sub"]) == (APP, USER)
    my_domain = jwt.encode(
        {"iss": APP, "sub": USER, "aud": sf.url, "exp": int(time.time()) + 180},
        app_key,
        algorithm="RS256",
    )
    http = http_session(SalesforceSettings(login_url=sf.url, ca_bundle=sf.ca_path))
    refused = http.post(
        f"{sf.url}/services/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": my_domain},
    )
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant", "error_description": "audience is invalid"}
    expired = jwt.encode(
        {"iss": APP, "sub": USER, "aud": claims["aud"], "exp": int(time.time()) - 60},
        app_key,
        algorithm="RS256",
    )
    late = http.post(
        f"{sf.url}/services/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": expired},
    )
    assert late.json()["error_description"] == "expired authorization code"
    as_simple_salesforce_sends_it = jwt.encode(  # exp as a numeric string
        {"iss": APP, "sub": USER, "aud": claims["aud"], "exp": f"{time.time() + 180:.0f}"},
        app_key,
        algorithm="RS256",
    )
    taken = http.post(
        f"{sf.url}/services/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": as_simple_salesforce_sends_it,
        },
    )
    assert taken.status_code == 200 and taken.json()["access_token"]


def test_a_sandbox_needs_test_salesforce_com_and_a_site_its_own_url(
    sf: EmulatorServer, app_key: str
) -> None:
    add_user(sf, "Ana Ruiz", "inside_sales")
    sf.org.sandbox = True
    with pytest.raises(AuthenticationFailed, match="audience is invalid") as info:
        list(adapter_for(sf, auth="jwt").read("members", None))
    assert "environment = 'sandbox'" in (info.value.fix or "")
    sandbox = adapter_for(sf, auth="jwt", environment="sandbox")
    assert [len(p) for p in sandbox.read("members", None)] == [1]
    site = "https://acme.my.site.com/partners"
    sf.org.community_urls.add(site)
    community = adapter_for(sf, auth="jwt", community_url=site)
    assert [len(p) for p in community.read("members", None)] == [1]


# --- client credentials -------------------------------------------------------------------


def test_client_credentials_login_and_session_renewal(sf: EmulatorServer) -> None:
    add_user(sf, "Ana Ruiz", "inside_sales")
    sf.org.add_client_app(APP, "app-secret", USER)
    adapter = adapter_for(sf, auth="client_credentials")
    bodies = sent_bodies(adapter)
    assert [len(p) for p in adapter.read("members", None)] == [1]
    assert "app-secret" not in str(bodies[0])  # the secret travels in the Basic header
    sf.org.expire_sessions()  # the session timed out: a new token with the same credentials
    assert [len(p) for p in adapter.read("members", None)] == [1]
    assert sf.requests.counts()["token"] == 2


def test_client_credentials_refusals_name_their_fix(
    sf: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sf.org.add_client_app(APP, "app-secret", None)
    with pytest.raises(AuthenticationFailed, match="no client credentials user") as info:
        list(adapter_for(sf, auth="client_credentials").read("members", None))
    assert "Run As" in (info.value.fix or "")
    sf.org.add_client_app(APP, "app-secret", USER)
    monkeypatch.setenv("SF_CLIENT_SECRET", "wrong-secret")
    with pytest.raises(AuthenticationFailed, match="invalid client credentials") as info:
        list(adapter_for(sf, auth="client_credentials").read("members", None))
    assert "wrong-secret" not in str(info.value)
    with pytest.raises(ConfigError, match="My Domain"):
        SalesforceSettings(auth="client_credentials", login_url="https://login.salesforce.com")


# --- check() ------------------------------------------------------------------------------


def test_check_reports_every_part_ok_on_a_healthy_org(sf: EmulatorServer) -> None:
    results = adapter_for(sf).check()
    by_part = {r.part: r for r in results}
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    assert list(by_part) == [
        "login",
        "object User",
        "object Lead",
        "object Task",
        "object Event",
        "API usage",
    ]
    opportunities = adapter_for(sf, fields=FieldMap(queued_object="Opportunity")).check()
    assert all(r.ok for r in opportunities) and "object Opportunity" in {
        r.part for r in opportunities
    }
    usage = re.fullmatch(r"(\d+) of 100000 daily API requests left", by_part["API usage"].detail)
    assert usage and 100_000 - sf.org.api_used <= int(usage.group(1)) < 100_000


def test_check_names_each_field_problem_with_its_fix(sf: EmulatorServer) -> None:
    fields = FieldMap(
        score_field="SPE_Score__c",  # does not exist
        tier_field="Rating",  # a picklist, not a number
        released_at_field="CreatedDate",  # exists, but Salesforce sets it
        calendar_events=False,
    )
    results = adapter_for(sf, fields=fields).check()
    problems = {r.part: r for r in results if r.status is CheckStatus.PROBLEM}
    assert set(problems) == {
        "field Lead.SPE_Score__c",
        "field Lead.Rating",
        "field Lead.CreatedDate",
    }
    assert "no field SPE_Score__c" in problems["field Lead.SPE_Score__c"].detail
    assert "picklist" in problems["field Lead.Rating"].detail
    assert "not updateable" in problems["field Lead.CreatedDate"].detail
    assert all(p.fix for p in problems.values())
    assert {r.part for r in results if r.ok} == {"login", "object User", "object Task", "API usage"}
    key_elsewhere = adapter_for(sf, fields=FieldMap(key_field="Description", calendar_events=False))
    task_key = [r.detail for r in key_elsewhere.check() if r.part == "field Task.Description"]
    assert "Task.Description is not marked External ID; SPE upserts by it." in task_key


def test_check_with_a_wrong_password_checks_nothing_else(
    sf: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_PASSWORD", "wrong-" + SECRET)
    results = adapter_for(sf).check()
    assert results[0].part == "login" and results[0].status is CheckStatus.PROBLEM
    assert "authentication failure" in results[0].detail and results[0].fix
    assert SECRET not in str(results)
    assert [r.status for r in results[1:]] == [CheckStatus.NOT_CHECKED] * 5
    assert not any(r.ok for r in results)


def test_check_proves_a_session_login_by_using_it(
    sf: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_SESSION_ID", "00Dexpired-session")
    adapter = adapter_for(sf, auth="session", instance_url=sf.url)
    results = adapter.check()
    assert results[0].status is CheckStatus.PROBLEM and "HTTP 401" in results[0].detail
    assert {r.status for r in results[1:]} == {CheckStatus.NOT_CHECKED}
    assert "00Dexpired-session" not in str(results)


def test_check_against_a_dead_port_or_an_unknown_certificate(sf: EmulatorServer) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings = SalesforceSettings(login_url=f"https://127.0.0.1:{dead}", ca_bundle=sf.ca_path)
    results = SalesforceAdapter(settings).check()
    assert results[0].status is CheckStatus.PROBLEM
    assert "refused the connection" in results[0].detail
    assert "start it" in (results[0].fix or "")
    assert {r.status for r in results[1:]} == {CheckStatus.NOT_CHECKED}
    untrusted = SalesforceAdapter(SalesforceSettings(login_url=sf.url)).check()
    assert "certificate" in untrusted[0].detail and "ca_bundle" in (untrusted[0].fix or "")
    assert {r.status for r in untrusted[1:]} == {CheckStatus.NOT_CHECKED}


# --- writes: milliseconds, whole-request errors -------------------------------------------

_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)")


def test_datetimes_are_written_with_at_most_milliseconds(sf: EmulatorServer) -> None:
    lead = sf.org.create("Lead", {"LastName": "A", "Company": "A", "SPE_Status__c": "Queued"})
    owner = add_user(sf, "Ivan Petrov", "field_sales")
    adapter = adapter_for(sf)
    bodies = sent_bodies(adapter)
    at = datetime(2026, 1, 5, 9, 30, 0, 123456, tzinfo=UTC)
    start = datetime(2026, 1, 6, 10, 0, 0, 999999, tzinfo=UTC)
    results = adapter.write(
        [Change("opportunity", "k1", {"status": "released", "released_at": at}, lead)]
    )
    results = [
        *results,
        *adapter.write(
            [
                Change(
                    "booking",
                    "b1",
                    {"owner": owner, "start": start, "end": start + timedelta(hours=1)},
                )
            ]
        ),
    ]
    assert all(r.ok for r in results), results
    written = [m.group(0) for b in bodies for m in _DATETIME.finditer(str(b))]
    assert written == [
        "2026-01-05T09:30:00.123Z",
        "2026-01-06T10:00:00.999Z",
        "2026-01-06T11:00:00.999Z",
    ]
    assert all(len(m.group(1) or "") <= 4 for b in bodies for m in _DATETIME.finditer(str(b)))
    assert sf.org.get("Lead", lead)["SPE_Released_At__c"] == at.replace(microsecond=123000)  # type: ignore[index]


def test_a_poisoned_record_refuses_the_whole_collection(sf: EmulatorServer) -> None:
    good = sf.org.create("Lead", {"LastName": "A", "Company": "A", "SPE_Status__c": "Queued"})
    bad = sf.org.create("Lead", {"LastName": "B", "Company": "B", "SPE_Status__c": "Queued"})
    adapter = adapter_for(sf)
    changes = [
        Change("opportunity", "k1", {"status": "released"}, good),
        Change("opportunity", "k2", {"status": "released", "owner": ["005 in a list"]}, bad),
    ]
    with pytest.raises(BatchRejected, match="whole collection") as info:
        adapter.write(changes)
    assert "JSON_PARSER_ERROR" in info.value.detail and "OwnerId" in info.value.detail
    assert sf.org.get("Lead", good)["SPE_Status__c"] == "Queued"  # type: ignore[index]
    (alone,) = adapter.write(changes[:1])  # the halves the sync engine sends go through
    assert alone.ok
    created = {"status": "queued", "account_id": "Acme"}
    poisoned = {**created, "source_campaign": {"name": "Web"}}  # an object for a picklist
    with pytest.raises(BatchRejected, match="whole collection"):  # upserts alike
        adapter.write([Change("opportunity", "k3", created), Change("opportunity", "k4", poisoned)])
    assert sf.org.by_external.get(("Lead", "SPE_Key__c", "k3")) is None


# --- deleted Tasks ----------------------------------------------------------------------------


def test_a_task_deleted_in_salesforce_cancels_the_routed_spe_task(sf: EmulatorServer) -> None:
    clock: FakeClock = sf.clock  # type: ignore[attr-defined]
    csr = add_user(sf, "Cara Service", "customer_service")
    routed_id = sf.org.create("Task", {"Subject": "Quote", "SPE_Kind__c": "quote"})
    never_routed = sf.org.create("Task", {"Subject": "Admin", "SPE_Kind__c": "admin"})
    sf.org.delete("Task", never_routed)  # deleted before SPE ever saw it
    clock.advance(minutes=10)
    engine = Engine(open_store("memory:"), clock=clock, plugins=Plugins.create(entry_points=False))
    sync = SyncEngine(engine, adapter_for(sf), sleep=lambda s: None)
    first = sync.run()
    assert first.streams["tasks"].applied == 1
    task = engine.task(f"sf-{routed_id}")
    assert task.assignee_id == csr and task.is_open
    with engine.store.transaction() as tx:  # the Task deleted unseen was never routed
        assert tx.get_task(f"sf-{never_routed}") is None
    sf.org.delete("Task", routed_id)
    clock.advance(minutes=10)
    report = sync.run()
    assert report.streams["tasks"].applied == 1
    cancelled = engine.task(task.id)
    assert cancelled.status is TaskStatus.CANCELLED and cancelled.assignee_id is None
    assert engine.open_tasks(csr) == []
    assert report.written == 0 and report.pending == 0 and sync.quarantined() == []
    assert sf.org.records["Task"] == {}  # nothing written to (or recreating) the deleted Task
    clock.advance(minutes=10)
    again = sync.run()
    assert again.applied == 0 and again.written == 0


def test_spe_check_shows_every_part_and_no_success_it_did_not_check(
    sf: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from spe_core import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "spe.toml").write_text(
        f'[adapter]\nname = "salesforce"\n[adapter.salesforce]\nlogin_url = "{sf.url}"\n'
        f'ca_bundle = "{sf.ca_path}"\n'
    )

    def rows() -> tuple[int, dict[str, dict[str, Any]]]:
        result = CliRunner().invoke(cli.app, ["check", "--json"])
        found = {r["check"]: r for r in json.loads(result.stdout) if r["check"].startswith("crm")}
        return result.exit_code, found

    code, found = rows()
    assert code == 0, found
    assert {"crm login", "crm object Lead", "crm API usage"} <= set(found)
    assert all(r["ok"] for r in found.values())
    monkeypatch.setenv("SF_PASSWORD", "wrong")
    code, found = rows()
    assert code == 2
    assert not found["crm login"]["ok"] and found["crm login"]["fix"]
    assert not any(r["ok"] for name, r in found.items() if name not in ("crm", "crm login"))
    assert found["crm object Lead"]["detail"].startswith("not checked")


@pytest.mark.parametrize("auth", ["password", "client_credentials"])
def test_a_session_that_timed_out_is_renewed_with_the_same_credentials(
    sf: EmulatorServer, auth: str
) -> None:
    clock: FakeClock = sf.clock  # type: ignore[attr-defined]
    add_user(sf, "Ana Ruiz", "inside_sales")
    sf.org.add_client_app(APP, "app-secret", USER)
    sf.org.session_timeout = timedelta(hours=2)
    adapter = adapter_for(sf, auth=auth)
    assert [len(p) for p in adapter.read("members", None)] == [1]
    clock.advance(minutes=90)  # activity keeps the session alive
    assert [len(p) for p in adapter.read("members", None)] == [1]
    assert sf.requests.counts()["token"] == 1
    clock.advance(hours=2)  # idle past the org's timeout
    lead = sf.org.create("Lead", {"LastName": "A", "Company": "A"})
    (result,) = adapter.write([Change("opportunity", "k1", {"status": "queued"}, lead)])
    assert result.ok and sf.requests.counts()["token"] == 2
    assert adapter.check()[0].ok
