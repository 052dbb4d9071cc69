"""Bodies at rest: sealed with AES-256-GCM under a key only the shop's credentials give.

A submit's body (card number, CVV, expiry) must be kept until the gateway
acknowledges it, so that a crash can be followed by a re-send with the same
``RequestID``; the gateway's answers and notifications (the card's expiry
and token) are kept so that no answer is ever lost. None is kept in clear:
each is sealed before the journal sees it and opened only to be used
(`Gateway.unseal` opens a record for reading). So every journal (memory,
SQLite, a store of your own) holds ciphertext only, and its files,
write-ahead logs and backups hold no card data a reader can use.

The key is derived (HKDF-SHA256) from the shop's secret key, bound to the
gateway and the shop id: only a process holding the same credentials can
re-send a journalled body. Each body is authenticated with what it belongs
to (its entry's key, and whether it is the request, the outcome or a
notification) as associated data, so it cannot be moved elsewhere. A
request body journalled in clear by an earlier version (JSON, starting with
``{``) is still sent as it is, and an answer journalled in clear still reads.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._records import JournalError

__all__ = ["Sealer"]

#: Marks a sealed body, and the format's version.
MAGIC: Final = b"bga\x01"
_NONCE: Final = 12
_SALT: Final = b"begateway-async journal body v1"


class Sealer:
    """Seals and opens the request bodies of one gateway and shop.

    Args:
        secret_key: the shop's secret key (never kept: only the derived key is).
        shop_id: the shop id.
        gateway: the gateway's base URL.
    """

    __slots__ = ("_aead",)

    def __init__(self, secret_key: str, shop_id: str, gateway: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=_SALT,
            info=f"{gateway}\n{shop_id}".encode(),
        ).derive(secret_key.encode())
        self._aead = AESGCM(derived)

    def __repr__(self) -> str:
        return "<Sealer AES-256-GCM>"

    def seal(self, body: bytes, *, key: str) -> bytes:
        """The body, encrypted and authenticated for the entry ``key``."""
        nonce = os.urandom(_NONCE)
        return MAGIC + nonce + self._aead.encrypt(nonce, body, key.encode())

    def open(self, sealed: bytes, *, key: str, request: bool = True) -> bytes:
        """The body sealed for ``key``, in clear.

        Args:
            sealed: what `seal` gave.
            key: what it was sealed for.
            request: it is a request body, to be sent: one journalled in clear
                by an earlier version must be JSON (an answer may be anything).

        Raises:
            JournalError: it was sealed with other credentials (or for another
                entry, or altered): it cannot be read from here.
        """
        if not sealed.startswith(MAGIC):
            if not request or sealed.lstrip()[:1] == b"{":
                return sealed  # journalled in clear by an earlier version
            raise JournalError(f"the request body of the entry {key!r} is not one of ours")
        nonce = sealed[len(MAGIC) : len(MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, sealed[len(MAGIC) + _NONCE :], key.encode())
        except InvalidTag:
            raise JournalError(
                f"the body of {key!r} was sealed with other credentials "
                "(another shop's secret key, or altered): this Gateway cannot open it"
            ) from None
