"""The emulator kit both emulators stand on: TLS from a trustme CA (temporary or kept) that
both client libraries trust, fault injection, the request log, the admin routes, the state
folder and the pytest fixture factory."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from hubspot import HubSpot
from simple_salesforce import Salesforce
from urllib3.util.retry import Retry

from spe_adapters.emulator_kit import (
    CertificateAuthority,
    EmulatorState,
    Faults,
    RollingWindow,
    default_state_dir,
)
from spe_adapters.emulator_kit.run import start_on_port
from spe_adapters.hubspot.emulator import EmulatorServer as HubSpotServer
from spe_adapters.hubspot.emulator.models import Faults as HubSpotFaults
from spe_adapters.salesforce.emulator import EmulatorServer as SalesforceServer

SRC = Path(__file__).resolve().parent.parent / "src"


def _plain() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE must not decide what is trusted here
    return session


# --- TLS -----------------------------------------------------------------------------------


def test_hubspot_api_client_trusts_the_emulator_through_its_ca_file() -> None:
    with HubSpotServer(tls=True) as hs:
        assert hs.url.startswith("https://127.0.0.1:")
        token = hs.portal.seed(deals=3)["access_token"]
        client = HubSpot(access_token=token, host=hs.url, ssl_ca_cert=hs.ca_path)
        owners = client.crm.owners.owners_api.get_page(limit=100).results
        assert len(owners) == 8
        untrusting = HubSpot(access_token=token, host=hs.url, retry=Retry(total=0))
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.crm.owners.owners_api.get_page(limit=1)


def test_simple_salesforce_trusts_the_emulator_through_its_ca_file() -> None:
    with SalesforceServer() as sf:
        sf.org.seed(leads=5)
        session = _plain()
        session.verify = sf.ca_path
        token = session.post(
            f"{sf.url}/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": "any",
                "username": "spe@demo.example",
                "password": "demo-password",
            },
        ).json()["access_token"]
        client = Salesforce(instance_url=sf.url, session_id=token, session=session)
        assert client.query("SELECT Id FROM Lead")["totalSize"] == 5
        with pytest.raises(requests.exceptions.SSLError):
            _plain().get(f"{sf.url}/services/data/")  # the system's CAs do not know it


def test_a_kept_ca_is_loaded_again_and_its_key_is_private(tmp_path: Path) -> None:
    first = CertificateAuthority(tmp_path)
    pem = Path(first.ca_path).read_bytes()
    key = tmp_path / "ca-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    second = CertificateAuthority(tmp_path)
    assert Path(second.ca_path).read_bytes() == pem
    with SalesforceServer(ca=second) as sf:  # a fresh server certificate, the same CA
        session = _plain()
        session.verify = str(tmp_path / "ca.pem")
        assert session.get(f"{sf.url}/services/data/").status_code == 200
    assert Path(first.ca_path).exists()  # stopping never removes a kept CA
    other = CertificateAuthority(tmp_path / "other")
    assert Path(other.ca_path).read_bytes() != pem


def test_a_temporary_ca_goes_with_its_server() -> None:
    server = SalesforceServer().start()
    ca_file = Path(server.ca_path)
    assert ca_file.exists()
    server.stop()
    assert not ca_file.exists()
    with pytest.raises(RuntimeError, match="plain HTTP"):
        _ = HubSpotServer().ca_path


# --- faults ----------------------------------------------------------------------------------


def test_faults_per_call_write_first_then_any_call_then_the_seeded_rate() -> None:
    faults = Faults(next_statuses=[500], write_statuses=[429])
    assert faults.draw(write=False) == 500
    assert faults.draw(write=True) == 429
    assert faults.draw(write=True) is None
    faults.rate, faults.rate_status = 0.5, 503
    faults.rng = random.Random(1)
    drawn = [faults.draw() for _ in range(200)]
    faults.rng = random.Random(1)
    assert [faults.draw() for _ in range(200)] == drawn  # seeded: a run repeats
    assert 60 < drawn.count(503) < 140 and set(drawn) == {503, None}


def test_faults_per_record_match_ids_and_keys_never_empty_ones() -> None:
    faults = Faults(failing_records={"a1": "UNABLE_TO_LOCK_ROW", "": "X"})
    assert faults.record_fault(None, "", "b2") is None
    assert faults.record_fault(None, "a1") == ("a1", "UNABLE_TO_LOCK_ROW")


def test_faults_configure_replaces_every_setting() -> None:
    faults = HubSpotFaults(next_statuses=[503], latency=1.0, daily_limit_hit=True)
    faults.configure({"write_statuses": ["502"], "failing_records": {"7": "VALIDATION_ERROR"}})
    assert faults.next_statuses == [] and faults.latency == 0.0
    assert faults.write_statuses == [502] and faults.failing_records == {"7": "VALIDATION_ERROR"}
    assert not faults.daily_limit_hit
    faults.configure({"daily_limit_hit": True})
    assert faults.draw() == 429


def test_a_rolling_window_forgets_calls_older_than_its_length() -> None:
    now = [100.0]
    window = RollingWindow(3, 10.0, clock=lambda: now[0])
    assert [window.hit() for _ in range(3)] == [2, 1, 0]
    assert not window.exceeded()
    window.hit()
    assert window.exceeded() and window.remaining() == 0
    now[0] += 10.0
    assert window.remaining() == 3


def test_faults_over_http_latency_and_per_call_statuses() -> None:
    with HubSpotServer() as hs:
        token = hs.portal.seed(deals=2)["access_token"]
        http = _plain()
        http.headers["Authorization"] = f"Bearer {token}"
        admin = f"{hs.url}/__emulator/faults"
        assert http.post(admin, json={"next_statuses": [503], "latency": 0.3}).status_code == 200
        started = time.monotonic()
        assert http.get(f"{hs.url}/crm/v3/owners").status_code == 503
        assert time.monotonic() - started >= 0.3
        assert http.get(f"{hs.url}/crm/v3/owners").status_code == 200
        assert http.post(admin, json={"latency": "slow"}).status_code == 400
        assert http.post(admin, data="{not json").status_code == 400


def test_salesforce_faults_over_http_expire_sessions_and_fail_a_record() -> None:
    with SalesforceServer() as sf:
        sf.org.seed(leads=1)
        session = _plain()
        session.verify = sf.ca_path
        token = sf.org.new_session()
        session.headers["Authorization"] = f"Bearer {token}"
        (lead,) = sf.org.all("Lead")
        session.post(
            f"{sf.url}/__emulator/faults",
            json={"failing_records": {lead["Id"]: "UNABLE_TO_LOCK_ROW"}},
        )
        reply = session.patch(
            f"{sf.url}/services/data/v59.0/composite/sobjects",
            json={"records": [{"attributes": {"type": "Lead"}, "Id": lead["Id"], "Rating": "Hot"}]},
        )
        assert reply.json()[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
        session.post(f"{sf.url}/__emulator/faults", json={"expire_sessions": True})
        assert session.get(f"{sf.url}/services/data/v59.0/limits").status_code == 401


# --- the request log and the admin routes ------------------------------------------------------


def test_the_log_counts_endpoints_and_unknown_urls_get_the_crms_error_shape() -> None:
    with HubSpotServer() as hs, SalesforceServer() as sf:
        token = hs.portal.seed(deals=1)["access_token"]
        http = _plain()
        http.headers["Authorization"] = f"Bearer {token}"
        http.get(f"{hs.url}/crm/v3/owners")
        http.get(f"{hs.url}/crm/v3/owners")
        missing = http.get(f"{hs.url}/no/such/thing")
        assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
        wrong = http.delete(f"{hs.url}/crm/v3/owners")
        assert wrong.status_code == 405 and wrong.json()["category"] == "VALIDATION_ERROR"
        assert hs.requests.counts() == {"owners": 2, "unknown": 2}
        assert [e.status for e in hs.requests.snapshot(2)] == [404, 405]
        logged = http.get(f"{hs.url}/__emulator/requests").json()
        assert logged["counts"] == {"owners": 2, "unknown": 2}
        assert logged["requests"][0]["path"] == "/crm/v3/owners"

        sf_http = _plain()
        sf_http.verify = sf.ca_path
        gone = sf_http.get(f"{sf.url}/services/data/v59.0/nothing")
        assert gone.status_code == 404 and gone.json()[0]["errorCode"] == "NOT_FOUND"


def test_admin_seed_and_reset_never_count_against_the_crm_limits() -> None:
    with HubSpotServer() as hs:
        http = _plain()
        token = http.post(f"{hs.url}/__emulator/seed", json={"deals": 4}).json()["access_token"]
        assert len(hs.portal.all("deals")) == 4
        assert hs.portal.api_used == 0
        assert token in hs.portal.tokens
        http.post(f"{hs.url}/__emulator/reset")
        assert hs.portal.all("deals") == [] and not hs.portal.tokens
        assert hs.requests.counts() == {"admin_reset": 1}  # the reset forgot what came before


# --- the state folder and ports ------------------------------------------------------------


def test_the_state_folder_keeps_secrets_and_the_port_until_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir("hubspot") == tmp_path / "xdg" / "spe" / "emulator" / "hubspot"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir("salesforce") == (
        Path.home() / ".local" / "state" / "spe" / "emulator" / "salesforce"
    )
    folder = tmp_path / "state"
    state = EmulatorState(folder)
    made = state.secret("token", lambda: "first")
    state.port = 4711
    again = EmulatorState(folder)
    assert again.secret("token", lambda: "second") == made == "first"
    assert again.port == 4711
    assert stat.S_IMODE((folder / "state.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    fresh = EmulatorState(folder, reset=True)
    assert fresh.port is None and fresh.secret("token", lambda: "second") == "second"


def test_a_taken_port_is_reported_with_its_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = EmulatorState(tmp_path)
    with HubSpotServer() as taken:
        assert start_on_port(lambda port: HubSpotServer(port=port), state, taken.port) is None
        assert f"port {taken.port} on 127.0.0.1 is in use" in capsys.readouterr().err
        server = start_on_port(lambda port: HubSpotServer(port=port), state, None)
        assert server is not None
        try:
            assert state.port == server.port != taken.port
        finally:
            server.stop()


# --- the pytest fixture factory --------------------------------------------------------------

CONFTEST = """
from spe_adapters.emulator_kit.fixtures import emulator_fixtures
from spe_adapters.salesforce.emulator import EmulatorServer

pytest_plugins = ["spe_adapters.hubspot.testing"]
_org_server, org = emulator_fixtures("org", EmulatorServer)
"""
TESTS = """
SERVERS = set()

def test_first(hubspot_emulator, org):
    hubspot_emulator.portal.seed(deals=2)
    org.org.seed(leads=2)
    SERVERS.add((id(hubspot_emulator), id(org)))
    assert len(hubspot_emulator.portal.all("deals")) == 2
    assert org.url.startswith("https://127.0.0.1:")

def test_second_gets_the_same_servers_reset(hubspot_emulator, org):
    assert SERVERS == {(id(hubspot_emulator), id(org))}
    assert hubspot_emulator.portal.all("deals") == [] and org.org.all("Lead") == []
    assert sum(hubspot_emulator.requests.counts().values()) == 0
"""


def test_the_fixture_factory_serves_integrators_tests(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (tmp_path / "test_integration.py").write_text(TESTS, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
