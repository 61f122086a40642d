"""HubSpot's webhooks through `spe serve`: a delivery signed with the app's client
secret (v3) syncs the deals it names at once; an unsigned, stale or forged one gets 401
and changes nothing. Against the HubSpot emulator, with the app built from spe.toml."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient

from spe_serve.app import app_from_config
from tests.doc_examples import CRM_CONFIG

SECRET = "app-secret-for-tests"
URL = "http://testserver/webhooks/hubspot"


@pytest.fixture
def hubspot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    emulator = pytest.importorskip("spe_adapters.hubspot.emulator.server")
    with emulator.EmulatorServer() as server:
        token = server.portal.seed(deals=6)["access_token"]
        monkeypatch.setenv("SPE_DOCS_HUBSPOT_TOKEN", token)
        monkeypatch.setenv("HUBSPOT_APP_SECRET", SECRET)
        monkeypatch.chdir(tmp_path)
        Path("spe.toml").write_text(CRM_CONFIG.format(url=server.url), encoding="utf-8")
        yield server


def _delivery(
    deal_id: str, *, secret: str = SECRET, age_s: float = 0
) -> tuple[bytes, dict[str, str]]:
    from spe_adapters.hubspot.webhooks import sign_v3

    body = json.dumps(
        [{"subscriptionType": "deal.propertyChange", "objectId": int(deal_id), "eventId": 1}]
    ).encode()
    stamp = str(int((time.time() - age_s) * 1000))
    headers = {
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", URL, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp,
        "Content-Type": "application/json",
    }
    return body, headers


def test_a_signed_delivery_syncs_the_deal_it_names(hubspot: Any) -> None:
    deal = hubspot.portal.create(
        "deals",
        {
            "dealname": "Fresh",
            "pipeline": "default",
            "dealstage": "appointmentscheduled",
            "spe_account": "Account 1",
            "spe_status": "queued",
        },
    )
    app = app_from_config("spe.toml")
    with TestClient(app) as client:
        engine = app.state.engine
        for body, headers in (
            _delivery(deal, secret="wrong"),
            _delivery(deal, age_s=301),
            (_delivery(deal)[0], {}),
        ):
            r = client.post("/webhooks/hubspot", content=body, headers=headers)
            assert r.status_code == 401, r.text
            assert SECRET not in r.text
        assert list(engine.store.opportunities()) == []
        body, headers = _delivery(deal)
        r = client.post("/webhooks/hubspot", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["synced"] == {"opportunities": 1}
        assert {o.external_id("hubspot") for o in engine.store.opportunities()} == {deal}


def test_no_secret_no_receiver(
    hubspot: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("HUBSPOT_APP_SECRET")
    app = app_from_config("spe.toml")
    with TestClient(app) as client:
        assert client.post("/webhooks/hubspot", content=b"[]").status_code == 404
    assert "HubSpot webhooks are off" in caplog.text


def _signed_call(
    method: str, path: str, body: bytes = b"", *, secret: str = SECRET, age_s: float = 0
) -> dict[str, str]:
    from spe_adapters.hubspot.webhooks import sign_v3

    stamp = str(int((time.time() - age_s) * 1000))
    return {
        "X-HubSpot-Signature-v3": sign_v3(secret, method, f"http://testserver{path}", body, stamp),
        "X-HubSpot-Request-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def test_hubspot_may_call_the_api_with_its_signature_instead_of_a_token(hubspot: Any) -> None:
    from spe_core import Member

    app = app_from_config("spe.toml")
    with TestClient(app) as client:
        engine = app.state.engine
        engine.upsert_members([Member("ann", "Ann", "inside_sales")])
        r = client.get("/api/v1/queue", headers=_signed_call("GET", "/api/v1/queue"))
        assert r.status_code == 200, r.text
        for headers in (
            _signed_call("GET", "/api/v1/queue", secret="forged"),
            _signed_call("GET", "/api/v1/queue", age_s=301),
            _signed_call("GET", "/api/v1/metrics"),  # signed for another URL
        ):
            r = client.get("/api/v1/queue", headers=headers)
            assert r.status_code == 401 and r.json()["code"] == "Unauthorized", r.text
            assert SECRET not in r.text
        body = json.dumps({"count": 1}).encode()
        path = "/api/v1/members/ann/pull"
        r = client.post(path, content=body, headers=_signed_call("POST", path, body))
        assert r.status_code == 200, r.text  # acts for the member it names, as an integration
        tampered = json.dumps({"count": 2}).encode()
        r = client.post(path, content=tampered, headers=_signed_call("POST", path, body))
        assert r.status_code == 401
        # a v3 header without its timestamp is not v3: no fallback to the legacy
        # signatures (v1 signs the body only, so it would fit any URL)
        from spe_adapters.hubspot.webhooks import sign_v1

        legacy = {
            "X-HubSpot-Signature-v3": "x",
            "X-HubSpot-Signature": sign_v1(SECRET, b""),
            "X-HubSpot-Signature-Version": "v1",
        }
        r = client.get("/api/v1/queue", headers=legacy)
        assert r.status_code == 401, r.text
        admin_only = "/api/v1/queue/sweep"
        r = client.post(admin_only, headers=_signed_call("POST", admin_only))
        assert r.status_code == 403
