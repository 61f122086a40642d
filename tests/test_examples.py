"""Every example under examples/ runs, as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

import spe_core
from spe_core import Engine, Member, Opportunity, open_store
from spe_core.plugins import Plugins

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# the spe-sdk this test runs on, first on the path of the example's own test run
SRC = Path(spe_core.__file__).resolve().parent.parent


def install(example: str, target: Path) -> None:
    """pip-install an example package into ``target`` (isolated from this process)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLES / example),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    sys.path.insert(0, str(EXAMPLES / "pull_next_web"))
    try:
        from app import PullNextApp  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    engine = Engine(
        open_store(f"sqlite:///{tmp_path / 'spe.db'}"), plugins=Plugins.create(entry_points=False)
    )
    engine.upsert_members(
        [Member("ana", "Ana", "inside_sales"), Member("pat", "Pat", "promotions")]
    )
    engine.enqueue([Opportunity(f"o{i}", f"a{i}", datetime.now(UTC), score=i) for i in range(2)])
    server = make_server("127.0.0.1", 0, PullNextApp(engine), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_pull_next_web_endpoint(web: str) -> None:
    http = requests.Session()
    http.trust_env = False
    assert http.get(f"{web}/queue").json()["level"] == 2
    first = http.post(f"{web}/pull/ana").json()["released"]
    assert first["id"] == "o1"
    reply = http.post(f"{web}/resolve/o1", json={"member": "ana", "outcome": "appointment_set"})
    assert reply.json() == {"id": "o1", "outcome": "appointment_set"}
    assert http.post(f"{web}/pull/ana").json()["released"]["id"] == "o0"
    empty = http.post(f"{web}/pull/ana")
    assert empty.status_code == 409
    assert "no more eligible" in empty.json()["reason"]
    assert http.post(f"{web}/pull/pat").status_code == 409  # promotions may not pull
    missing = http.post(f"{web}/pull/zed")
    assert missing.status_code == 404
    assert "fix" in missing.json()
    assert (
        http.post(f"{web}/resolve/o0", json={"member": "ana", "outcome": "maybe"}).status_code
        == 400
    )


@pytest.mark.slow
def test_scoring_plugin_installs_and_reorders_the_queue(tmp_path: Path) -> None:
    install("scoring_plugin", tmp_path / "site")
    script = """
import json
from datetime import UTC, datetime
from spe_core import Engine, Member, Opportunity, open_store
from spe_core.plugins import Plugins
plugins = Plugins.create()
engine = Engine(open_store("memory:"), plugins=plugins)
engine.upsert_members([Member("ana", "Ana", "inside_sales")])
now = datetime.now(UTC)
engine.enqueue([Opportunity("cold", "a", now, score=60),
                Opportunity("ref", "b", now, score=30, source_campaign="Referral")])
print(json.dumps({"names": plugins.names(), "first": engine.pull("ana").released[0].id}))
"""
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
    ).stdout
    result = json.loads(out)
    assert "referral_boost" in result["names"]
    assert result["first"] == "ref"


def _run_example_tests(
    name: str, tmp_path: Path, *flags: str
) -> subprocess.CompletedProcess[str]:
    """Install the example package ``name`` and run its own tests against the spe-sdk
    under test (its entry point registered); fails with their output if they fail."""
    install(name, tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(SRC)])}
    env.pop("SPE_BLOCK_PLUGINS", None)
    tests = str(EXAMPLES / name / "tests")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *flags, "-p", "no:cacheprovider", tests],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc


@pytest.mark.slow
def test_csv_adapter_package_passes_the_contract_suite(tmp_path: Path) -> None:
    proc = _run_example_tests("csv_adapter", tmp_path, "-q")
    assert " passed" in proc.stdout


@pytest.mark.slow
def test_pipedrive_like_adapter_written_from_the_guide_passes_the_contract_suite(
    tmp_path: Path,
) -> None:
    """The second example adapter, written from docs/adapters.md alone, installs, registers
    through its entry point and passes every case of the suite, optional ones included."""
    proc = _run_example_tests("pipedrive_like_adapter", tmp_path, "-v", "-rs")
    assert " passed" in proc.stdout
    assert "skipped" not in proc.stdout, proc.stdout[-3000:]  # every contract case ran
    for case in (
        "test_read_includes_records_modified_at_the_bookmark_instant",
        "test_deleted_records_leave_the_flow",
    ):
        assert f"::TestPipedriveLikeContract::{case} PASSED" in proc.stdout


def test_nightly_job_against_the_salesforce_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from spe_adapters.salesforce.emulator import EmulatorServer

    sys.path.insert(0, str(EXAMPLES / "nightly_job"))
    try:
        from job import main as nightly_main  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    with EmulatorServer() as sf:
        sf.org.add_login("job@acme.example", "pw")
        monkeypatch.setenv("SF_USERNAME", "job@acme.example")
        monkeypatch.setenv("SF_PASSWORD", "pw")
        monkeypatch.setenv("SF_CLIENT_ID", "app")
        monkeypatch.setenv("SF_CLIENT_SECRET", "secret")
        sf.org.create(
            "User",
            {
                "Name": "Ana",
                "Username": "ana@acme.example",
                "SPE_Role__c": "inside_sales",
                "IsActive": True,
            },
        )
        for i in range(30):
            sf.org.create(
                "Lead", {"LastName": f"L{i}", "Company": f"C{i}", "SPE_Status__c": "Backlog"}
            )
        args = [
            "--store",
            f"sqlite:///{tmp_path / 'spe.db'}",
            "--login-url",
            sf.url,
            "--ca-bundle",
            sf.ca_path,
            "--target",
            "20",
        ]
        assert nightly_main(args) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["read"] == 31
        assert summary["queue"] == {
            "level": 20,
            "target": 20,
            "zone": "green",
            "promotions_shortfall": 0,
        }
        queued = [r for r in sf.org.all("Lead") if r["SPE_Status__c"] == "Queued"]
        assert len(queued) == 20  # Salesforce shows the morning's queue
        assert nightly_main(args) == 0  # a second night changes nothing
        assert len([r for r in sf.org.all("Lead") if r["SPE_Status__c"] == "Queued"]) == 20
        monkeypatch.setenv("SF_PASSWORD", "wrong")
        assert nightly_main(args) == 3
        assert "refused" in capsys.readouterr().out


def test_hubspot_webhook_app_against_the_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spe_adapters.hubspot.emulator import EmulatorServer
    from spe_adapters.hubspot.settings import HubSpotSettings
    from spe_adapters.hubspot.webhooks import sign_v3

    sys.path.insert(0, str(EXAMPLES / "hubspot_webhook"))
    try:
        from webhook_app import make_app  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    with EmulatorServer() as hs:
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", hs.portal.new_token())
        monkeypatch.setenv("HUBSPOT_APP_SECRET", "app-secret")
        deal = hs.portal.create(
            "deals",
            {
                "dealname": "Acme",
                "pipeline": "default",
                "spe_account": "Acme",
                "spe_status": "queued",
            },
        )
        store = f"sqlite:///{tmp_path / 'spe.db'}"
        app = make_app(store, HubSpotSettings(host=hs.url), "https://spe.acme.example")
        server = make_server("127.0.0.1", 0, app, threaded=False)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_port}/hubspot/webhook"
            body = json.dumps(
                [{"subscriptionType": "deal.propertyChange", "objectId": int(deal)}]
            ).encode()
            timestamp = str(int(datetime.now(UTC).timestamp() * 1000))
            public = "https://spe.acme.example/hubspot/webhook"
            headers = {
                "X-HubSpot-Signature-v3": sign_v3("app-secret", "POST", public, body, timestamp),
                "X-HubSpot-Request-Timestamp": timestamp,
                "Content-Type": "application/json",
            }
            http = requests.Session()
            http.trust_env = False
            assert http.get(url.replace("/hubspot/webhook", "/healthz")).json() == {"ok": True}
            forged = http.post(url, data=body, headers={**headers, "X-HubSpot-Signature-v3": "x"})
            assert forged.status_code == 401
            reply = http.post(url, data=body, headers=headers)
            assert reply.status_code == 200, reply.text
            assert reply.json()["synced"] == {"opportunities": 1}
        finally:
            server.shutdown()
        engine = Engine(open_store(store), plugins=Plugins.create(entry_points=False))
        assert [o.external_id("hubspot") for o in engine.store.opportunities()] == [deal]
