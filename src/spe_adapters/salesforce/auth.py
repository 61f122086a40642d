"""Authentication: the OAuth token exchange, against a configurable login URL.

simple-salesforce's own password, JWT and client-credentials logins post to a
hard-coded ``https://{domain}.salesforce.com`` host, so the adapter exchanges
credentials itself (against production, a sandbox, a My Domain or the
emulator's ``/services/oauth2/token``), in the same form simple-salesforce
sends, and hands the session id and instance URL to simple-salesforce:

- password: the consumer key and secret with the user's password (and token);
- JWT bearer: an RS256 assertion whose ``aud`` is login.salesforce.com,
  test.salesforce.com or the Experience Cloud site (``settings.jwt_audience``),
  never the My Domain host the request goes to;
- client credentials: the consumer key and secret in an HTTP Basic header, to the
  org's My Domain (the session runs as the connected app's "Run As" user).

A refused login is :class:`~spe_core.errors.AuthenticationFailed`; no answer at
all is classified by :func:`spe_adapters._network.transport_error`. Secrets are
read from the environment and never appear in logs or error text.
"""

from __future__ import annotations

import base64
import time

import attrs
import requests

from spe_adapters._network import transport_error
from spe_adapters.salesforce.settings import SalesforceSettings
from spe_core.errors import AuthenticationFailed, ConfigError, TransientError

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
        "aud": settings.jwt_audience,  # never the My Domain host the request goes to
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
    headers: dict[str, str] = {}
    if settings.auth == "client_credentials":
        secret = settings.secret(settings.client_secret_env, "connected app consumer secret")
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
        form = {"grant_type": "client_credentials"}
        return _exchange(settings, http, form, headers)
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
    return _exchange(settings, http, form, headers)


def _exchange(
    settings: SalesforceSettings,
    http: requests.Session,
    form: dict[str, str],
    headers: dict[str, str],
) -> Session:
    """Post the grant to the token endpoint; a session, or SPE's error for the answer."""
    url = settings.login_url.rstrip("/") + "/services/oauth2/token"
    try:
        reply = http.post(url, data=form, headers=headers, timeout=settings.timeout_seconds)
    except requests.RequestException as exc:
        raise transport_error(exc, "Salesforce", settings.login_url) from None
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
        raise AuthenticationFailed(
            f"Salesforce refused the {settings.auth} login ({detail}).",
            _LOGIN_FIX[settings.auth],
        )
    body = reply.json()
    return Session(str(body["access_token"]), str(body["instance_url"]).rstrip("/"))


_LOGIN_FIX = {
    "password": "check the username, password and security token variables "
    "(username_env, password_env, security_token_env), the connected app's consumer key "
    "and secret, and login_url (https://test.salesforce.com for sandboxes).",
    "jwt": "check that the connected app has the certificate of the key in "
    "private_key_file_env, that the user is pre-authorized for the app, and the audience: "
    "environment = 'sandbox' for a sandbox, community_url for an Experience Cloud site.",
    "client_credentials": "check the consumer key and secret variables (client_id_env, "
    "client_secret_env), that the app has 'Enable Client Credentials Flow' with a "
    "Run As user, and that login_url is the org's My Domain.",
}


def _optional_env(name: str) -> str:
    import os

    return os.environ.get(name, "")
