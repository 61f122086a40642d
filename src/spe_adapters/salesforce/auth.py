"""Authentication: the OAuth token exchange, against a configurable login URL.

simple-salesforce's own password and JWT logins post to a hard-coded
salesforce.com host, so the adapter exchanges credentials itself (against
production, a sandbox, a My Domain or the emulator's
``/services/oauth2/token``) and hands the session id and instance URL to
simple-salesforce. Secrets are read from the environment and never appear in
logs or error text.
"""

from __future__ import annotations

import time

import attrs
import requests

from spe_adapters.salesforce.settings import SalesforceSettings
from spe_core.errors import AdapterError, ConfigError, TransientError

__all__ = ["Session", "login"]


@attrs.frozen(repr=False)
class Session:
    """A Salesforce session: the access token and the instance it is valid for."""

    session_id: str
    instance_url: str

    def __repr__(self) -> str:  # never print the token
        return f"Session(instance_url={self.instance_url!r}, session_id=<hidden>)"


def _jwt_assertion(settings: SalesforceSettings, client_id: str, username: str) -> str:
    import jwt  # PyJWT, installed with simple-salesforce

    path = settings.secret(settings.private_key_file_env, "private key file")
    try:
        with open(path, encoding="utf-8") as handle:
            key = handle.read()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the private key file named by {settings.private_key_file_env}: "
            f"{exc.strerror}.",
            "point the variable at the PEM file of the connected app's key.",
        ) from None
    claims = {
        "iss": client_id,
        "sub": username,
        "aud": settings.login_url.rstrip("/"),
        "exp": int(time.time()) + 180,
    }
    token: str = jwt.encode(claims, key, algorithm="RS256")
    return token


def login(settings: SalesforceSettings, http: requests.Session) -> Session:
    """Obtain a session as the settings say (session id, password or JWT bearer flow)."""
    if settings.auth == "session":
        if settings.instance_url is None:
            raise ConfigError(
                "Salesforce session login needs the org's instance URL.",
                "set [adapter.salesforce] instance_url in spe.toml (e.g. "
                "https://acme.my.salesforce.com).",
            )
        return Session(
            settings.secret(settings.session_id_env, "session id"),
            settings.instance_url.rstrip("/"),
        )
    client_id = settings.secret(settings.client_id_env, "connected app consumer key")
    username = settings.secret(settings.username_env, "username")
    if settings.auth == "password":
        form = {
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": settings.secret(
                settings.client_secret_env, "connected app consumer secret"
            ),
            "username": username,
            "password": settings.secret(settings.password_env, "password")
            + _optional_env(settings.security_token_env),
        }
    else:
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": _jwt_assertion(settings, client_id, username),
        }
    url = settings.login_url.rstrip("/") + "/services/oauth2/token"
    try:
        reply = http.post(url, data=form, timeout=settings.timeout_seconds)
    except requests.RequestException as exc:
        raise TransientError(
            f"cannot reach the Salesforce login service at {settings.login_url} "
            f"({type(exc).__name__}).",
            "check the network and login_url; the sync will retry.",
        ) from None
    if reply.status_code >= 500:
        raise TransientError(
            f"the Salesforce login service answered {reply.status_code}.", "the sync will retry."
        )
    if reply.status_code != 200:
        try:
            body = reply.json()
            detail = f"{body.get('error')}: {body.get('error_description')}"
        except ValueError:
            detail = f"HTTP {reply.status_code}"
        raise AdapterError(
            f"Salesforce refused the {settings.auth} login for the configured user ({detail}).",
            "check the credentials' environment variables, the connected app and login_url "
            "(test.salesforce.com for sandboxes).",
        )
    body = reply.json()
    return Session(str(body["access_token"]), str(body["instance_url"]).rstrip("/"))


def _optional_env(name: str) -> str:
    import os

    return os.environ.get(name, "")
