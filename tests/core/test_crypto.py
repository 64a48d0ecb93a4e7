"""Keyed hashes and phone encryption: each key gives its own answer, and only held keys work."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app.core.crypto import CryptoError, KeyRing, Keys
from tests.keys.helpers import ring_settings

K1, K2 = b"\x01" * 32, b"\x02" * 32


def test_a_mac_is_hmac_sha256_under_the_named_key_and_repeats() -> None:
    ring = KeyRing("index", "k2", {"k1": K1, "k2": K2})
    for _ in range(2):  # the keyed state is copied, never used up
        assert ring.mac(b"number:+819012345678") == hmac.digest(
            K2, b"number:+819012345678", hashlib.sha256
        )
        assert ring.mac(b"number:+819012345678", key_id="k1") == hmac.digest(
            K1, b"number:+819012345678", hashlib.sha256
        )
    assert ring.mac(b"a") != ring.mac(b"b")


def test_a_key_the_ring_does_not_hold_is_refused() -> None:
    ring = KeyRing("index", "k1", {"k1": K1})
    with pytest.raises(CryptoError, match="no index key with id 'gone'"):
        ring.mac(b"x", key_id="gone")


def test_a_number_encrypted_under_an_old_key_decrypts_while_that_key_is_held(
    database_url, tmp_path
) -> None:
    old = Keys(ring_settings(database_url, tmp_path, rings={"phone": ("t1",)}))
    during = Keys(ring_settings(database_url, tmp_path, rings={"phone": ("t2", "t1")}))
    after = Keys(ring_settings(database_url, tmp_path, rings={"phone": ("t2",)}))
    key_id, blob = old.encrypt("+819012345678", context=b"verification:ver_a")
    assert key_id == "t1"
    assert during.decrypt(blob, key_id="t1", context=b"verification:ver_a") == "+819012345678"
    assert during.encrypt("+819012345678", context=b"c")[0] == "t2"
    with pytest.raises(CryptoError, match="no phone key with id 't1'"):
        after.decrypt(blob, key_id="t1", context=b"verification:ver_a")
    # Bound to its row: another row's context, or one changed byte, does not decrypt.
    with pytest.raises(CryptoError, match="failed authentication"):
        old.decrypt(blob, key_id="t1", context=b"verification:ver_b")
    with pytest.raises(CryptoError, match="failed authentication"):
        old.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), key_id="t1", context=b"verification:ver_a")
