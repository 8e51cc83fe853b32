"""The client's address and scheme behind reverse proxies (setting `trusted_proxies`).

Tornado's `xheaders` believes X-Forwarded-For and X-Real-IP from any peer, so any client could
pick the address the login throttle counts against. Here they are read only when the peer itself
is a trusted proxy, and X-Forwarded-For is walked from the right: the client is the first address
that is not a trusted proxy (a client can prepend anything, but not what the proxies append).
X-Real-IP is used only without X-Forwarded-For.
"""

import ipaddress
from functools import lru_cache

from tornado import httputil

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=16)
def networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in trusted)


def parse_address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address | None, trusted: tuple[Network, ...]) -> bool:
    return address is not None and any(address in net for net in trusted
                                       if net.version == address.version)


def client_address(peer: str, headers: httputil.HTTPHeaders,
                   trusted: tuple[str, ...]) -> str:
    """The address to count a request against: the peer's, unless the peer is a trusted proxy
    that says who it forwards for."""
    nets = networks(trusted)
    if not nets or not is_trusted(parse_address(peer), nets):
        return peer
    forwarded = headers.get_list("X-Forwarded-For")
    if forwarded:
        client = peer
        hops = [hop for value in forwarded for hop in value.split(",")]
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                break  # junk: keep the last hop a trusted proxy vouched for
            client = str(address)
            if not is_trusted(address, nets):
                break
        return client
    real = parse_address(headers.get("X-Real-IP", ""))
    return str(real) if real is not None else peer


def client_scheme(peer: str, headers: httputil.HTTPHeaders, scheme: str,
                  trusted: tuple[str, ...]) -> str:
    """`https` when a trusted proxy says it received the request over TLS."""
    nets = networks(trusted)
    if not nets or not is_trusted(parse_address(peer), nets):
        return scheme
    said = headers.get("X-Forwarded-Proto", headers.get("X-Scheme", ""))
    said = said.split(",")[-1].strip().lower()
    return said if said in ("http", "https") else scheme


def apply_forwarded(request: httputil.HTTPServerRequest, trusted: tuple[str, ...]) -> None:
    """Set the request's `remote_ip` and `protocol` from a trusted proxy's headers (before any
    handler sees the request)."""
    if not trusted or request.remote_ip is None:
        return
    peer = request.remote_ip
    request.protocol = client_scheme(peer, request.headers, request.protocol, trusted)
    request.remote_ip = client_address(peer, request.headers, trusted)
