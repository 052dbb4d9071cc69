"""begateway-async: the async-mode client of beGateway-platform card gateways.

Submit a payment (or any of the eleven operations) to the gateway's
``/async/...`` URL and await a typed result, while one scheduler per
`Gateway` polls every pending job::

    import begateway_async as bga

    async with bga.Gateway(bga.UNONAPAY, shop_id=361, secret_key="...") as gw:
        tx = await gw.payment(bga.Payment(amount=100, currency="USD", ...))
"""

import attrs as _attrs

from ._client import Gateway
from ._clock import SchedulingClock
from ._config import (
    BEGATEWAY_DEMO,
    BEPAID,
    ECOMCHARGE,
    PAYCROSS,
    UNONAPAY,
    Limits,
    PollPolicy,
    Timeouts,
)
from ._endpoint import WebhookEndpoint
from ._errors import (
    FollowUpTimeout,
    GatewayError,
    GatewayStateError,
    InvalidRequest,
    JobAbandoned,
    JobError,
    JobExpired,
    JobFailed,
    JobLost,
    JobRejected,
    JobTimeout,
    MalformedResponse,
    NotResumable,
    Rejected,
    RequestRejected,
    SubmitIndeterminate,
    SubmitRejected,
    TransactionNotFound,
    TransportError,
    UnsafeURL,
    WebhookMalformed,
    WebhookRejected,
    WebhookSignatureInvalid,
    WebhookUnauthorized,
)
from ._events import Ended, Event, Notified, Polled, Submitted, Throttled
from ._jobs import AsCompleted, Job, JobState
from ._journal import Journal, MemoryJournal
from ._models import (
    AvsCvc,
    Balance,
    BankDetails,
    BeProtected,
    Card,
    ThreeDSecure,
    Transaction,
    TransactionStatus,
)
from ._parts import AdditionalData, BillingAddress, CreditCard, Customer, EncryptedCreditCard
from ._postgres import PostgresJournal
from ._records import JournalEntry, JournalError, JournalNotification, JournalOutcome
from ._requests import (
    Authorization,
    BalanceQuery,
    Capture,
    Chargeback,
    Checkup,
    Payment,
    Payout,
    Refund,
    Request,
    StatusQuery,
    Tokenization,
    TrackingIdQuery,
    Void,
)
from ._shared import DuplicateIntent, LeaseLost, NotificationMatch, SharedJournal
from ._sqlite import SQLiteJournal
from ._version import __version__
from ._webhooks import Notification, WebhookVerifier

__all__ = [
    "BEGATEWAY_DEMO",
    "BEPAID",
    "ECOMCHARGE",
    "PAYCROSS",
    "UNONAPAY",
    "AdditionalData",
    "AsCompleted",
    "Authorization",
    "AvsCvc",
    "Balance",
    "BalanceQuery",
    "BankDetails",
    "BeProtected",
    "BillingAddress",
    "Capture",
    "Card",
    "Chargeback",
    "Checkup",
    "CreditCard",
    "Customer",
    "DuplicateIntent",
    "EncryptedCreditCard",
    "Ended",
    "Event",
    "FollowUpTimeout",
    "Gateway",
    "GatewayError",
    "GatewayStateError",
    "InvalidRequest",
    "Job",
    "JobAbandoned",
    "JobError",
    "JobExpired",
    "JobFailed",
    "JobLost",
    "JobRejected",
    "JobState",
    "JobTimeout",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalNotification",
    "JournalOutcome",
    "LeaseLost",
    "Limits",
    "MalformedResponse",
    "MemoryJournal",
    "NotResumable",
    "Notification",
    "NotificationMatch",
    "Notified",
    "Payment",
    "Payout",
    "PollPolicy",
    "Polled",
    "PostgresJournal",
    "Refund",
    "Rejected",
    "Request",
    "RequestRejected",
    "SQLiteJournal",
    "SchedulingClock",
    "SharedJournal",
    "StatusQuery",
    "SubmitIndeterminate",
    "SubmitRejected",
    "Submitted",
    "ThreeDSecure",
    "Throttled",
    "Timeouts",
    "Tokenization",
    "TrackingIdQuery",
    "Transaction",
    "TransactionNotFound",
    "TransactionStatus",
    "TransportError",
    "UnsafeURL",
    "Void",
    "WebhookEndpoint",
    "WebhookMalformed",
    "WebhookRejected",
    "WebhookSignatureInvalid",
    "WebhookUnauthorized",
    "WebhookVerifier",
    "__version__",
]

# Present the public names as ``begateway_async.X``. Type hints of attrs
# classes are resolved first, in their defining modules (the converter
# evaluates them later against ``__module__``), and only then re-homed.
_public = [globals()[_name] for _name in __all__]
for _obj in _public:
    if _attrs.has(_obj):
        _attrs.resolve_types(_obj)
for _obj in _public:
    if getattr(_obj, "__module__", "").startswith("begateway_async._"):
        _obj.__module__ = "begateway_async"
del _obj, _public
