"""Client addresses as the service records and counts them."""

from __future__ import annotations

import ipaddress

# What a request without a usable client address is recorded from (an IP address
# without a zone is at most 45 characters: the columns that hold one take 64).
UNKNOWN_ADDRESS = "unknown"

# An IPv6 client is one /64: the block a home, a phone or a server is given, whose
# addresses it may rotate through at will (RFC 4941 and RFC 8981 do it by themselves).
IPV6_CLIENT_PREFIX = 64


def recorded(host: str) -> str:
    """The client address to record: an IP address as its canonical text (an IPv4
    address written as IPv6, ``::ffff:192.0.2.1``, as the IPv4 address it is), anything
    else ``unknown``, never kept as given (it could be a phone number). A zone
    (``fe80::1%eth0``) means nothing for a remote client and holds any text, so an
    address with one is unknown too."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return UNKNOWN_ADDRESS
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return UNKNOWN_ADDRESS
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
    return str(address)


# NAT64's well-known prefix (RFC 6052): an IPv4 client behind a translator, its address
# in the last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def counted_as(address: str) -> str:
    """What a per-address limit counts a recorded address as: an IPv4 address itself,
    an IPv6 address its /64, so that one host cannot pass a limit, nor seem to be many
    sources, by rotating through its own addresses; ``unknown`` as it is. An IPv6
    address that carries an IPv4 client's (NAT64, 6to4, Teredo) counts as that IPv4
    address: by their /64 every IPv4 client behind one translator would share a count."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        carried = _carried_ipv4(parsed)
        if carried is not None:
            return str(carried)
        network = ipaddress.IPv6Network((parsed, IPV6_CLIENT_PREFIX), strict=False)
        return str(network)
    return address


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client)
    return None
