"""The client's address behind trusted proxies, read the way ipaddress reads addresses."""

from __future__ import annotations

import ipaddress

import pytest

from app.core.http import _parse, client_ip, is_trusted

TRUSTED = [ipaddress.ip_network(n) for n in ("127.0.0.1/32", "10.0.0.0/8", "fd00::/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("198.51.100.7", "203.0.113.9", "198.51.100.7"),  # untrusted peer: header ignored
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "203.0.113.9, 10.1.2.3", "203.0.113.9"),  # our proxy skipped
        ("127.0.0.1", "10.9.9.9, 203.0.113.9, 10.1.2.3", "203.0.113.9"),  # not spoofable
        ("127.0.0.1", "2001:db8::1, fd00::5", "2001:db8::1"),
        ("127.0.0.1", "10.1.2.3, fd00::5", "10.1.2.3"),  # every hop ours: the first
        ("127.0.0.1", "::ffff:10.0.0.1", "::ffff:10.0.0.1"),  # mapped: not 10.0.0.0/8
        ("127.0.0.1", "fe80::1%eth0", "fe80::1%eth0"),
        ("127.0.0.1", "010.1.2.3", "010.1.2.3"),  # leading zeros: no address, not trusted
        ("127.0.0.1", "junk", "junk"),
    ],
)
def test_the_client_is_the_last_hop_that_is_not_a_trusted_proxy(peer, forwarded_for, client):
    assert client_ip(peer, forwarded_for, TRUSTED) == client


@pytest.mark.parametrize(
    "text",
    [
        "10.1.2.3", "0.0.0.0",  # noqa: S104 (text to parse; nothing binds)
        "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4",
        " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "١.٢.٣.٤", "::", "::1", "fd00::5", "FD00::5",
        "2001:db8::1", "::ffff:10.0.0.1", "fe80::1%eth0", "1::2::3", "12345::1", "", "::ffff:1.2.3",
        "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "[::1]", "x" * 80,
    ],
)  # fmt: skip
def test_an_address_is_read_exactly_as_ipaddress_reads_it(text):
    try:
        expected = ipaddress.ip_address(text)
    except ValueError:
        expected = None
    assert _parse(text) == expected
    assert is_trusted(text, TRUSTED) == (
        expected is not None and any(expected in n for n in TRUSTED)
    )
