"""Building request objects from plain mappings (one line of a batch file, a JSON body).

``{"operation": "refund", "parent_uid": "...", "amount": 100, "reason": "..."}``
becomes ``Refund(parent_uid=..., amount=100, reason=...)``: nested objects
become their classes, ISO dates become dates, and anything wrong raises
`InvalidRequest` naming the field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import attrs

from begateway_async import (
    AdditionalData,
    Authorization,
    BalanceQuery,
    BillingAddress,
    Capture,
    Chargeback,
    Checkup,
    CreditCard,
    Customer,
    EncryptedCreditCard,
    InvalidRequest,
    Payment,
    Payout,
    Refund,
    Request,
    StatusQuery,
    Tokenization,
    TrackingIdQuery,
    Void,
)

__all__ = ["OPERATIONS", "request_from_mapping"]

#: Operation name → request class. ``credit`` is a `Payout` on the legacy path.
OPERATIONS: Final[Mapping[str, type[Request[Any]]]] = {
    "payment": Payment,
    "authorization": Authorization,
    "tokenization": Tokenization,
    "checkup": Checkup,
    "capture": Capture,
    "void": Void,
    "refund": Refund,
    "chargeback": Chargeback,
    "payout": Payout,
    "credit": Payout,
    "status_query": StatusQuery,
    "tracking_id_query": TrackingIdQuery,
    "balance_query": BalanceQuery,
}

_NESTED: Final[Mapping[str, type]] = {
    "credit_card": CreditCard,
    "recipient_credit_card": CreditCard,
    "encrypted_credit_card": EncryptedCreditCard,
    "customer": Customer,
    "recipient": Customer,
    "billing_address": BillingAddress,
    "recipient_billing_address": BillingAddress,
    "additional_data": AdditionalData,
}


def _build(cls: type, data: Mapping[str, Any], path: str) -> Any:
    names = {f.name: f for f in attrs.fields(cls)}
    values: dict[str, Any] = {}
    for key, given in data.items():
        where = f"{path}.{key}"
        if key not in names:
            raise InvalidRequest(where, "is not a field; put the gateway's other fields in 'extra'")
        value = given
        if key in _NESTED and given is not None:
            if not isinstance(given, Mapping):
                raise InvalidRequest(where, f"must be an object, not {type(given).__name__}")
            value = _build(_NESTED[key], given, where)
        elif key == "expired_at" and isinstance(given, str):
            value = _parse(dt.datetime.fromisoformat, given, where)
        elif key == "birth_date" and isinstance(given, str):
            value = _parse(dt.date.fromisoformat, given, where)
        values[key] = value
    missing = [
        name
        for name, field in names.items()
        if field.default is attrs.NOTHING and name not in values
    ]
    if missing:
        raise InvalidRequest(f"{path}.{missing[0]}", "is required")
    return cls(**values)


def _parse(parse: Any, value: str, where: str) -> Any:
    try:
        return parse(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(where, f"is not an ISO 8601 date: {value!r}") from exc


def request_from_mapping(data: object) -> Request[Any]:
    """Build the request that ``data`` describes.

    ``data["operation"]`` names the operation (`OPERATIONS`); the other keys
    are the request's fields, with nested objects as mappings and dates as
    ISO 8601 strings.

    Raises:
        InvalidRequest: the operation is unknown, or a field is missing or wrong.
    """
    if not isinstance(data, Mapping):
        raise InvalidRequest("request", f"must be a JSON object, not {type(data).__name__}")
    fields = dict(data)
    operation = fields.pop("operation", None)
    if not isinstance(operation, str) or operation not in OPERATIONS:
        raise InvalidRequest(
            "operation", f"must be one of {', '.join(OPERATIONS)}, not {operation!r}"
        )
    cls = OPERATIONS[operation]
    if operation == "credit":
        fields["legacy"] = True
    request: Request[Any] = _build(cls, fields, cls.__name__)
    return request
