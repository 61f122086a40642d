"""spe-sdk: Sales Process Engineering for the CRM you already run.

The core is pure: :mod:`spe_core.queue` (and the routing, calendar and flow
modules) hold the rules as functions of values and a time passed in;
:class:`spe_core.engine.Engine` applies them against a store
(:func:`spe_core.store.open_store`) in units of work and records every change
as an event. :class:`spe_core.sync.SyncEngine` keeps it in step with a CRM
through an :class:`~spe_core.adapter.Adapter`.

Everything an integration needs is importable from here; the submodules hold
the rest (the pure rule functions, the stores, the test kit).
"""

from __future__ import annotations

from spe_core.adapter import (
    Adapter,
    Change,
    ChangeKind,
    Checkable,
    CheckResult,
    CheckStatus,
    Inbound,
    SourceRecord,
    StreamSpec,
    WriteResult,
)
from spe_core.calendar import (
    CalendarRules,
    MemberCalendar,
    Proposal,
    Slot,
    Violation,
    WeekPlan,
)
from spe_core.clock import Clock, FakeClock, SystemClock
from spe_core.codec import from_json, to_json
from spe_core.engine import (
    Engine,
    PullResult,
    QueueStatus,
    ReplenishResult,
    SweepResult,
    UnitOfWork,
)
from spe_core.errors import (
    AdapterError,
    AuthenticationFailed,
    BatchRejected,
    CertificateProblem,
    CommitOutcomeUnknown,
    ConfigError,
    CrmError,
    CrmUnreachable,
    InvalidValue,
    MappingError,
    NotCommitted,
    NotFound,
    RoleMayNotPull,
    RuleViolation,
    SpeError,
    StoreDamaged,
    StoreError,
    StoreFull,
    StoreGone,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
    TransientError,
    TryLater,
    UnknownMember,
    UnknownOpportunity,
    WrongOwner,
    WrongState,
)
from spe_core.events import Event, Recorded
from spe_core.flow import FlowMetrics, FlowReport, HistoryVerdict, ProcessMap
from spe_core.hookspecs import hookimpl
from spe_core.model import (
    Absence,
    AppointmentRequest,
    Booking,
    BookingStatus,
    Busy,
    DayHours,
    FrozenMap,
    Location,
    MeetingMode,
    Member,
    Opportunity,
    OpportunityStatus,
    Outcome,
    Role,
    Task,
    TaskKind,
    TaskStatus,
    TimeWindow,
    WorkingHours,
)
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy, Zone
from spe_core.routing import Fairness, Route, RoutingTable, Sla, Strategy
from spe_core.store import Store, open_store
from spe_core.store.base import Transaction
from spe_core.sync import SyncEngine, SyncReport, SyncSettings
from spe_core.team import MemberSettings

__all__ = [
    "Absence",
    "Adapter",
    "AdapterError",
    "AppointmentRequest",
    "AuthenticationFailed",
    "BatchRejected",
    "Booking",
    "BookingStatus",
    "Busy",
    "CalendarRules",
    "CertificateProblem",
    "Change",
    "ChangeKind",
    "CheckResult",
    "CheckStatus",
    "Checkable",
    "Clock",
    "CommitOutcomeUnknown",
    "ConfigError",
    "CrmError",
    "CrmUnreachable",
    "DayHours",
    "Engine",
    "Event",
    "Fairness",
    "FakeClock",
    "FlowMetrics",
    "FlowReport",
    "FrozenMap",
    "HistoryVerdict",
    "Inbound",
    "InvalidValue",
    "Location",
    "MappingError",
    "MeetingMode",
    "Member",
    "MemberCalendar",
    "MemberSettings",
    "NotCommitted",
    "NotFound",
    "Opportunity",
    "OpportunityStatus",
    "Outcome",
    "Plugins",
    "ProcessMap",
    "Proposal",
    "PullResult",
    "QueuePolicy",
    "QueueStatus",
    "Recorded",
    "ReplenishResult",
    "Role",
    "RoleMayNotPull",
    "Route",
    "RoutingTable",
    "RuleViolation",
    "Sla",
    "Slot",
    "SourceRecord",
    "SpeError",
    "Store",
    "StoreDamaged",
    "StoreError",
    "StoreFull",
    "StoreGone",
    "StoreLocked",
    "StoreReadOnly",
    "StoreUnavailable",
    "Strategy",
    "StreamSpec",
    "SweepResult",
    "SyncEngine",
    "SyncReport",
    "SyncSettings",
    "SystemClock",
    "Task",
    "TaskKind",
    "TaskStatus",
    "TimeWindow",
    "Transaction",
    "TransientError",
    "TryLater",
    "UnitOfWork",
    "UnknownMember",
    "UnknownOpportunity",
    "Violation",
    "WeekPlan",
    "WorkingHours",
    "WriteResult",
    "WrongOwner",
    "WrongState",
    "Zone",
    "__version__",
    "from_json",
    "hookimpl",
    "open_store",
    "to_json",
]

__version__ = "0.1.0.dev0"
