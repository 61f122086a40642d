"""Every exception spe-sdk raises on purpose.

Each message says what was wrong and how to fix it. Catch :class:`SpeError` to
handle them all. Messages never contain secrets: values that may be secret
(tokens, passwords, keys) are never interpolated into them.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "AdapterError",
    "AuthenticationFailed",
    "BatchRejected",
    "CertificateProblem",
    "CommitOutcomeUnknown",
    "ConfigError",
    "CrmError",
    "CrmUnreachable",
    "MappingError",
    "TransientError",
    "InvalidValue",
    "NotCommitted",
    "NotFound",
    "RoleMayNotPull",
    "RuleViolation",
    "SpeError",
    "StoreDamaged",
    "StoreError",
    "StoreFull",
    "StoreGone",
    "StoreLocked",
    "StoreReadOnly",
    "StoreUnavailable",
    "TryLater",
    "UnknownMember",
    "UnknownOpportunity",
    "WrongOwner",
    "WrongState",
]


class SpeError(Exception):
    """Base class of every error raised by spe-sdk on purpose."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem} Fix: {fix}")


class InvalidValue(SpeError, ValueError):
    """A value handed to the library breaks one of its invariants."""


class ConfigError(SpeError, ValueError):
    """A configuration value (spe.toml, policy, mapping) is wrong."""


class NotFound(SpeError, LookupError):
    """Something looked up by id does not exist."""


class UnknownMember(NotFound):
    """A member id that the store does not know."""

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        super().__init__(
            f"No member with id {member_id!r} is known to this store.",
            "add the member first (Engine.upsert_members or a CRM sync), "
            "or check the id for typos.",
        )


class UnknownOpportunity(NotFound):
    """An opportunity id that the store does not know."""

    def __init__(self, opportunity_id: str) -> None:
        self.opportunity_id = opportunity_id
        super().__init__(
            f"No opportunity with id {opportunity_id!r} is known to this store.",
            "enqueue it or add it to the backlog first, or check the id.",
        )


class RuleViolation(SpeError):
    """An operation would break an SPE rule."""


class RoleMayNotPull(RuleViolation):
    """A member whose role may not pull from the queue asked to pull."""

    def __init__(self, member_id: str, role: str, allowed: tuple[str, ...]) -> None:
        self.member_id = member_id
        self.role = role
        super().__init__(
            f"Member {member_id!r} has role {role!r}, which may not pull opportunities "
            f"(roles allowed to pull: {', '.join(allowed)}).",
            "pull as a member with an allowed role, or add the role to "
            "QueuePolicy.pull_roles ([queue] pull_roles in spe.toml) if your process "
            "really wants it.",
        )


class WrongState(RuleViolation):
    """An operation needs the thing in another state than the one it is in."""


class WrongOwner(RuleViolation):
    """A member acted on work released or assigned to somebody else."""


class StoreError(SpeError):
    """The store cannot do what was asked (bad URL, schema too new, ...).

    The kinds below are database faults, raised at the store boundary with the
    driver's error as ``__cause__``: no ``sqlite3``, ``psycopg`` or
    ``psycopg_pool`` error reaches callers. ``store`` names the store (the SQLite
    file, or PostgreSQL host, database and schema; never a password);
    ``retryable`` says whether the same call may succeed if tried again.
    """

    retryable: bool = False

    def __init__(self, problem: str, fix: str | None = None, *, store: str = "") -> None:
        self.store = store
        super().__init__(problem, fix)


class StoreUnavailable(StoreError):
    """The store could not be reached in time: connection refused or lost, no pooled
    connection free, a timeout. Transient: the same call may succeed once the
    database is back (nothing was committed)."""

    retryable = True


class StoreLocked(StoreError):
    """Another writer held a lock longer than this call may wait (SQLite's busy
    timeout, PostgreSQL's ``lock_timeout``, a deadlock). Nothing was committed;
    trying again may succeed. The fix names the timeout to raise."""

    retryable = True


class NotCommitted(StoreUnavailable):
    """The connection broke while the commit was on its way, and the store made sure
    (on a fresh connection, after ending the broken session) that nothing was
    committed. The engine tries such a call once more by itself; this reaches callers
    only when the second try failed the same way. Safe to try again."""


class CommitOutcomeUnknown(StoreError):
    """The connection broke after the commit was sent and the store could not find
    out (on a fresh connection) whether it took effect. Read the state back, or
    repeat the call with the same ``operation_id``: a call already done returns its
    first result instead of acting twice."""


class StoreDamaged(StoreError):
    """The store's file or tables are corrupt or unreadable. Nothing is written to
    it; the fix says how to check it and restore a backup."""


class StoreGone(StoreError):
    """The store is no longer where it was opened: the SQLite file was deleted or
    replaced while open, or the PostgreSQL schema was dropped. Nothing is written."""


class StoreReadOnly(StoreError):
    """The store refuses writes: a read-only file or folder, or a PostgreSQL server
    in read-only mode (a standby after a failover)."""


class StoreFull(StoreError):
    """A write failed for lack of space: the disk is full or a file size limit
    (``ulimit -f``) was reached. Nothing was committed."""


class MappingError(SpeError, ValueError):
    """A CRM record cannot be mapped onto an SPE value (a missing or malformed field).

    The sync engine quarantines the record with this message and goes on.
    """


class CrmError(SpeError):
    """A CRM call failed. Catch this for both kinds below; tell them apart to decide
    whether trying again can help."""


class AdapterError(CrmError):
    """A CRM call failed for good: bad credentials, a missing permission, bad
    configuration, or an adapter that broke its contract (a bug). Retrying the same
    call will fail the same way; fix the cause first."""


class TransientError(CrmError):
    """A CRM call failed in a way worth retrying (rate limit, 5xx, timeout, a dropped
    connection). Not a kind of :class:`AdapterError`: a transient failure is not a
    failure for good.

    ``retry_after`` is the delay in seconds the CRM asked for, if it said.
    """

    def __init__(
        self, problem: str, fix: str | None = None, *, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(problem, fix)


class CrmUnreachable(TransientError):
    """The CRM could not be reached: the connection was refused, the host name did
    not resolve, or connecting timed out.

    Transient for a long-running sync (the CRM may come back), but an interactive
    command fails at once instead of retrying for minutes: ``spe`` commands and
    ``check()`` treat it as a reason to stop and show the fix.
    """


class AuthenticationFailed(AdapterError):
    """The CRM refused the credentials (HTTP 401, ``invalid_grant``, an expired or
    revoked token). Retrying cannot help; the fix names the setting to correct."""


class CertificateProblem(AdapterError):
    """The TLS certificate of the CRM (or of a proxy in between) could not be
    verified. Retrying cannot help; point ``ca_bundle`` at the right CA file."""


class BatchRejected(AdapterError):
    """The CRM refused a whole batch because at least one of its inputs is invalid,
    writing nothing (HubSpot batch update/upsert, a Salesforce collection request
    with a request-level error).

    The sync engine answers by splitting the batch until the bad inputs stand
    alone; each is then a permanent failure of its own and the rest are written.
    ``detail`` is the CRM's own message for the batch.
    """

    def __init__(self, problem: str, fix: str | None = None, *, detail: str = "") -> None:
        self.detail = detail
        super().__init__(problem, fix)


class TryLater(CrmError):
    """The CRM will refuse calls for longer than a run should wait (a daily API
    limit), so the run stops now, nothing lost, and should be started again after
    ``until`` (an aware datetime, when the CRM's reset time is known).

    ``spe`` commands exit with code 75 (``EX_TEMPFAIL``) on it.
    """

    def __init__(
        self, problem: str, fix: str | None = None, *, until: datetime | None = None
    ) -> None:
        self.until = until
        super().__init__(problem, fix)
