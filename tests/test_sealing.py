"""Request bodies at rest: sealed with a key only the shop's credentials give."""

from __future__ import annotations

import pytest

import begateway_async as bga
from begateway_async._sealing import MAGIC, Sealer

BODY = (
    b'{"request":{"amount":100,'
    b'"credit_card":{"number":"4200000000000000","verification_value":"739"}}}'
)
SEALER = Sealer("the shop's secret", "361", "https://gw.test")


def test_a_sealed_body_holds_no_card_data_and_opens_again():
    """Sealing hides the body (no PAN, no CVV); the same credentials open it for the same entry."""
    sealed = SEALER.seal(BODY, key="k1")
    assert sealed.startswith(MAGIC)
    assert b"4200000000000000" not in sealed
    assert b"verification_value" not in sealed
    assert SEALER.open(sealed, key="k1") == BODY
    assert SEALER.seal(BODY, key="k1") != sealed  # a fresh nonce each time


@pytest.mark.parametrize(
    "opener",
    [
        Sealer("another secret", "361", "https://gw.test"),
        Sealer("the shop's secret", "362", "https://gw.test"),
        Sealer("the shop's secret", "361", "https://other.test"),
    ],
    ids=["secret", "shop", "gateway"],
)
def test_other_credentials_cannot_open_it(opener):
    """Another secret, shop or gateway gets JournalError, never the body."""
    with pytest.raises(bga.JournalError, match="other credentials"):
        opener.open(SEALER.seal(BODY, key="k1"), key="k1")


def test_a_body_cannot_move_to_another_entry_nor_be_altered():
    """The entry's key is authenticated with the body; a changed byte is refused too."""
    sealed = SEALER.seal(BODY, key="k1")
    with pytest.raises(bga.JournalError):
        SEALER.open(sealed, key="k2")
    altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(bga.JournalError):
        SEALER.open(altered, key="k1")


def test_a_body_journalled_in_clear_by_an_earlier_version_is_sent_as_it_is():
    """JSON in clear (an older journal) opens as it is; anything else is refused."""
    assert SEALER.open(BODY, key="k1") == BODY
    with pytest.raises(bga.JournalError, match="not one of ours"):
        SEALER.open(b"\x00garbage", key="k1")


def test_the_sealer_shows_no_secret():
    """Its repr names the cipher only."""
    assert repr(SEALER) == "<Sealer AES-256-GCM>"
