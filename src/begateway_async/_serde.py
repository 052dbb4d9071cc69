"""The one cattrs converter: request models to wire dicts, answers to result models.

Built once, with ``detailed_validation=True``; a structuring failure becomes
`MalformedResponse` carrying the whole answer, never a raw cattrs error.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Final

import attrs
import cattrs

from ._errors import MalformedResponse
from ._models import Balance, Transaction, TransactionStatus
from ._parts import CreditCard
from ._requests import Request, ResultKind

__all__ = [
    "TooDeep",
    "converter",
    "decode_json",
    "parse_result",
    "parse_transaction",
    "request_body",
]

converter = cattrs.Converter(detailed_validation=True)


def _structure_datetime(value: Any, _: type) -> dt.datetime | None:
    # A timestamp in a format we cannot read must not fail a payment's result:
    # the field reads None and the original string stays in ``raw``.
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "1", 1):
        return True
    if value in ("false", "0", 0):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _structure_int(value: Any, _: type) -> int:
    # Amounts are integers in minor units: a fractional number is refused,
    # never truncated (cattrs' default ``int(10.99)`` would give 10).
    if isinstance(value, bool):
        raise TypeError(f"not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(f"not an integer: {value!r}")


def _structure_str(value: Any, _: type) -> str:
    # Bank references (rrn, auth codes) come as numbers from some acquirers.
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"not a string: {type(value).__name__}")


def _structure_mapping(value: Any, _: type) -> Mapping[str, Any] | None:
    # A section that is not an object (``[]`` where ``{}`` was meant) reads
    # None: it must not fail a payment's result, and ``raw`` keeps it.
    return value if isinstance(value, Mapping) else None


converter.register_structure_hook(dt.datetime, _structure_datetime)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(TransactionStatus, lambda v, _: TransactionStatus(v))
converter.register_structure_hook_func(lambda t: t == Mapping[str, Any], _structure_mapping)


def _wire(value: Any) -> Any:
    """Unstructure one request value for the wire, dropping unset (None) fields."""
    if attrs.has(type(value)):
        return _wire_fields(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_wire(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _wire(v) for k, v in value.items()}
    return value


def _wire_fields(instance: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(type(instance)):
        if field.metadata.get("local") or field.name == "extra":
            continue
        value = getattr(instance, field.name)
        if value is not None:
            out[field.name] = _wire(value)
    if isinstance(instance, CreditCard):
        if instance.exp_month is not None:
            out["exp_month"] = f"{instance.exp_month:02d}"
        if instance.exp_year is not None:
            out["exp_year"] = str(instance.exp_year)
    extra = getattr(instance, "extra", None)
    if extra:
        out.update(_wire(extra))
    return out


def request_body(request: Request[Any]) -> bytes | None:
    """Return the JSON body of a request, wrapped in ``{"request": {...}}``; None for GETs."""
    if request.http_method == "GET":
        return None
    return json.dumps({"request": _wire_fields(request)}, separators=(",", ":")).encode()


class TooDeep(ValueError):  # noqa: N818 - names what the answer is
    """JSON nested deeper than the parser can follow: valid, perhaps, but never a result."""


def decode_json(body: bytes | str) -> Any:
    """Decode a JSON answer.

    Raises:
        TooDeep: it is nested too deeply to read (a hostile answer).
        ValueError: it is not JSON (HTML, truncated, not UTF-8, a number too long, ...).
    """
    try:
        return json.loads(body)
    except RecursionError:
        raise TooDeep("the JSON is nested too deeply to read") from None


def _section(tx: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = tx.get(name)
    return value if isinstance(value, Mapping) else None


#: The v2 sections named after a transaction type (the bank's answer is in one of them).
_TYPE_SECTIONS: Final = (
    "payment",
    "authorization",
    "capture",
    "void",
    "refund",
    "credit",
    "payout",
    "chargeback",
    "p2p",
    "tokenization",
    "checkup",
)
#: Our names for the gateway's sections: never taken from the answer as they are.
_SECTIONS: Final = ("card", "bank", "three_d_secure", "be_protected", "avs_cvc", "raw")
#: String fields read only when they are strings (dates read None when unreadable anyway).
_LENIENT: Final = ("id", "payment_method_type")


def _bank_section(tx: Mapping[str, Any], type_name: object) -> Mapping[str, Any] | None:
    """The v2 bank section: named after the type, or the one type section there is."""
    if isinstance(type_name, str):
        return _section(tx, type_name)
    for name in _TYPE_SECTIONS:
        found = _section(tx, name)
        if found is not None:
            return found
    return None


def _transaction_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """Bring the classic and the v3 shapes to the fields of `Transaction`."""
    if "uid" not in body and isinstance(body.get("transaction"), Mapping):
        tx: Mapping[str, Any] = body["transaction"]  # classic: {"transaction": {...}}
        type_name = tx.get("type")
        bank = _bank_section(tx, type_name)
        card = _section(tx, "credit_card")
    else:
        tx = body  # v3, or an item of a tracking-id list: flat
        type_name = tx.get("type")
        bank = _section(tx, "transaction")
        if bank is None:
            bank = _bank_section(tx, type_name)
        card = _section(tx, "payment_method") or _section(tx, "credit_card")
    fields = {k: v for k, v in tx.items() if k in _FIELDS and v is not None}
    for name in _LENIENT:  # fields added later: an odd value there never fails a result
        if name in fields and not isinstance(fields[name], str):
            del fields[name]
    if "payment_method_type" not in fields and card is not None:
        kind = card.get("payment_method_type")  # v3 keeps it in payment_method
        if isinstance(kind, str):
            fields["payment_method_type"] = kind
    links = _section(tx, "links")
    if "receipt_url" not in fields and links and links.get("receipt_url"):
        fields["receipt_url"] = links["receipt_url"]
    if card is not None:
        fields["card"] = card
    if bank is not None:
        fields["bank"] = bank
    fields.update(_verifications(tx))
    fields["raw"] = body
    return fields


def _verifications(tx: Mapping[str, Any]) -> dict[str, Any]:
    """The 3-D Secure, beProtected and AVS/CVC sections, by our names."""
    found: dict[str, Any] = {}
    three_ds = _section(tx, "three_d_secure_verification")
    if three_ds is not None:
        found["three_d_secure"] = three_ds
    risk = _section(tx, "be_protected_verification")
    if risk is not None:  # what is not of its type reads None (``raw`` keeps it)
        found["be_protected"] = {
            name: value
            for name, value in risk.items()
            if (name in ("status", "message") and isinstance(value, str))
            or (name in ("white_black_list", "rules", "limit") and isinstance(value, Mapping))
        }
    checks = _section(tx, "avs_cvc_verification")
    if checks is not None:
        avs, cvc = _section(checks, "avs_verification"), _section(checks, "cvc_verification")
        found["avs_cvc"] = {
            "avs_result_code": _text(avs.get("result_code")) if avs else None,
            "cvc_result_code": _text(cvc.get("result_code")) if cvc else None,
        }
    return found


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


_FIELDS: Final = frozenset(f.name for f in attrs.fields(Transaction)) - frozenset(_SECTIONS)


def _structure(fields: Mapping[str, Any], cls: type[Any], body: Any, request_id: str | None) -> Any:
    try:
        return converter.structure(fields, cls)
    except cattrs.BaseValidationError as exc:
        reason = "; ".join(cattrs.transform_error(exc, path=cls.__name__))
        raise MalformedResponse(reason, body=body, request_id=request_id) from exc


def parse_transaction(body: Any, *, request_id: str | None = None) -> Transaction:
    """Read a transaction answer of either shape.

    Raises:
        MalformedResponse: the answer is not a transaction; it carries the whole body.
    """
    if not isinstance(body, Mapping):
        raise MalformedResponse("not a JSON object", body=body, request_id=request_id)
    fields = _transaction_fields(body)
    if "status" not in fields:
        raise MalformedResponse("no transaction status", body=body, request_id=request_id)
    result: Transaction = _structure(fields, Transaction, body, request_id)
    return result


def _parse_transactions(body: Any, request_id: str | None) -> list[Transaction]:
    items = body.get("transactions") if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        raise MalformedResponse("no transactions list", body=body, request_id=request_id)
    found: list[Transaction] = []
    for index, item in enumerate(items):
        try:
            found.append(parse_transaction(item, request_id=request_id))
        except MalformedResponse as exc:  # the error carries the whole answer, not the item
            raise MalformedResponse(
                f"transactions[{index}]: {exc.reason}", body=body, request_id=request_id
            ) from exc
    return found


def _parse_balance(body: Any, request_id: str | None) -> Balance:
    if not isinstance(body, Mapping):
        raise MalformedResponse("not a JSON object", body=body, request_id=request_id)
    result = body.get("result")
    inner: Mapping[str, Any] = result if isinstance(result, Mapping) else body
    fields = {
        "status": body.get("status"),
        "gateway_id": inner.get("gatewayId", inner.get("gateway_id")),
        "account": inner.get("account"),
        "amount": inner.get("amount"),
        "currency": inner.get("currency"),
        "bank_info": inner.get("bankInfo", inner.get("bank_info")),
        "raw": body,
    }
    balance: Balance = _structure(
        {k: v for k, v in fields.items() if v is not None}, Balance, body, request_id
    )
    return balance


def parse_result(kind: ResultKind, body: Any, *, request_id: str | None = None) -> Any:
    """Read a job's result according to its operation's kind of answer."""
    if kind == "transactions":
        return _parse_transactions(body, request_id)
    if kind == "balance":
        return _parse_balance(body, request_id)
    return parse_transaction(body, request_id=request_id)
