"""Bearer tokens for ``spe serve``: created, listed, revoked and checked in the store.

A token reads ``spe_<id>_<secret>``: ``id`` (12 hex digits) is public and names
the record, ``secret`` is 32 random bytes (``secrets.token_urlsafe``). The
store keeps only the SHA-256 of the whole token, under the metadata key
``serve:tokens:<id>``, with the token's kind, member and dates; the list of ids
lives under ``serve:tokens:index``. A fast unsalted hash is enough here because
the secret is 256 random bits, not a password: nobody can guess it from its hash
faster than by trying 2**255 values, so a slow password hash (bcrypt, argon2)
would only slow every request down. Hashes are compared with
:func:`hmac.compare_digest`, so the time taken does not tell how much of a guess
was right.

Nothing here ever puts a token's secret into a message or a log line.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from datetime import datetime

import attrs

from spe_core.engine import Engine
from spe_core.errors import InvalidValue, NotFound, WrongState

__all__ = ["TokenInfo", "TokenKind", "Tokens"]

PREFIX = "serve:tokens:"
INDEX = PREFIX + "index"
LOCK = "serve:tokens"
_TOKEN = re.compile(r"spe_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_DUMMY = hashlib.sha256(b"no such token").hexdigest()


class TokenKind(enum.StrEnum):
    """What a token may do."""

    MEMBER = "member"
    """Acts for one member only (a rep's own page or softphone)."""
    INTEGRATION = "integration"
    """Acts for any member the call names (a CRM flow passing the current user)."""
    ADMIN = "admin"
    """Everything, including the queue's maintenance operations."""


@attrs.frozen
class TokenInfo:
    """A token as stored, without its secret."""

    id: str
    kind: TokenKind
    member_id: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "member_id": self.member_id,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=1024)
def _decode(text: str) -> tuple[TokenInfo, str]:
    # remembered by the record's text (which holds a hash, never a secret): the record is
    # still read from the store on every check, so a revocation there counts at once
    data = json.loads(text)
    revoked = data.get("revoked_at")
    info = TokenInfo(
        id=data["id"],
        kind=TokenKind(data["kind"]),
        member_id=data.get("member_id"),
        label=data.get("label", ""),
        created_at=datetime.fromisoformat(data["created_at"]),
        revoked_at=None if revoked is None else datetime.fromisoformat(revoked),
    )
    return info, str(data["sha256"])


def _encode(info: TokenInfo, digest: str) -> str:
    return json.dumps({**info.to_json(), "sha256": digest}, sort_keys=True)


class Tokens:
    """The tokens kept in an engine's store (its metadata)."""

    def __init__(self, engine: Engine, *, cache_seconds: float = 0.0) -> None:
        """``cache_seconds``: how long a token found valid is trusted without reading the
        store again (0: read it on every call). A token revoked elsewhere (by
        ``spe token revoke``, or on another replica) stops working within that time."""
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[TokenInfo, float]] = {}
        self._cache_lock = threading.Lock()

    def create(
        self, kind: TokenKind | str, member_id: str | None = None, label: str = ""
    ) -> tuple[TokenInfo, str]:
        """A new token: its record and the token itself, which is shown this once only."""
        try:
            kind = TokenKind(kind)
        except ValueError:
            raise InvalidValue(
                f"{kind!r} is not a kind of token.",
                f"use one of: {', '.join(k.value for k in TokenKind)}.",
            ) from None
        if (kind is TokenKind.MEMBER) != (member_id is not None):
            raise InvalidValue(
                "a member token needs a member id, and only a member token takes one.",
                "create it with --member ID, or with --integration or --admin alone.",
            )
        if not isinstance(label, str) or len(label) > 200 or not label.isprintable():
            raise InvalidValue(
                "a token's label must be printable text of at most 200 characters.",
                "shorten the label or leave it out.",
            )
        with self.engine.unit() as u:
            tx = u.tx
            if member_id is not None:
                self.engine.member(member_id)  # an unknown member fails here (same unit)
            tx.lock(LOCK)
            token_id = secrets.token_hex(6)
            token = f"spe_{token_id}_{secrets.token_urlsafe(32)}"
            info = TokenInfo(token_id, kind, member_id, label, u.now)
            tx.set_meta(PREFIX + token_id, _encode(info, _digest(token)))
            ids = json.loads(tx.get_meta(INDEX) or "[]")
            tx.set_meta(INDEX, json.dumps([*ids, token_id]))
        return info, token

    def list(self) -> list[TokenInfo]:
        """Every token ever created (revoked ones too), oldest first; never a secret."""
        with self.engine.unit() as u:
            tx = u.tx
            ids = json.loads(tx.get_meta(INDEX) or "[]")
            out = []
            for token_id in ids:
                text = tx.get_meta(PREFIX + token_id)
                if text is not None:
                    out.append(_decode(text)[0])
        return out

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token by its id (the part after ``spe_``); it stops working at once."""
        with self.engine.unit() as u:
            tx = u.tx
            tx.lock(LOCK)
            text = (
                tx.get_meta(PREFIX + token_id) if re.fullmatch(r"[0-9a-f]{12}", token_id) else None
            )
            if text is None:
                raise NotFound(
                    f"no token with id {token_id!r}.",
                    "list the tokens with `spe token list` and use an id from there.",
                )
            info, digest = _decode(text)
            if info.revoked_at is not None:
                raise WrongState(f"token {token_id} is already revoked.", "nothing to do.")
            info = attrs.evolve(info, revoked_at=u.now)
            tx.set_meta(PREFIX + token_id, _encode(info, digest))
        with self._cache_lock:  # revoked here: forgotten here at once
            self._cache = {k: v for k, v in self._cache.items() if v[0].id != token_id}
        return info

    def verify(self, presented: str) -> TokenInfo | None:
        """The active token that ``presented`` is, or None (unknown, malformed or revoked)."""
        digest_presented = _digest(presented)
        if self.cache_seconds > 0:
            with self._cache_lock:
                hit = self._cache.get(digest_presented)  # keyed by hash: no secret kept
            if hit is not None and time.monotonic() - hit[1] < self.cache_seconds:
                return hit[0]
        found = self._verify(presented, digest_presented)
        if found is not None and self.cache_seconds > 0:
            with self._cache_lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest_presented] = (found, time.monotonic())
        return found

    def _verify(self, presented: str, digest_presented: str) -> TokenInfo | None:
        match = _TOKEN.fullmatch(presented)
        token_id = match.group(1) if match else "0" * 12
        with self.engine.unit() as u:
            text = u.tx.get_meta(PREFIX + token_id)
        info, digest = _decode(text) if text is not None else (None, _DUMMY)
        # compared even when the id is unknown, so the time taken says nothing
        same = hmac.compare_digest(digest, digest_presented)
        if match is None or info is None or not same or info.revoked_at is not None:
            return None
        return info
