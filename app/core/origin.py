"""Whether a form post comes from the service's own origin: the one check, before any
CSRF token, that both the self-service pages (/my/) and the staff console make.

A token bound to a cookie does not stop a page of the same site (another port of the
host, a sibling host of the registrable domain, which can plant a cookie with
``Domain=``) from posting a cookie and token pair of its own before the browser holds
one: signing the visitor into the attacker's session (login CSRF). The browser says where
a request comes from, and no page can forge it:

- ``Sec-Fetch-Site``: only ``same-origin`` (our own page) passes, and ``none`` (a request
  the person made themselves, which no other page can cause); ``same-site``,
  ``cross-site`` or anything else is refused.
- ``Origin``: when present, it must be the request's own origin, scheme, host and port as
  the app sees them (behind trusted proxies uvicorn's proxy-header middleware has set the
  scheme), or that of ``SMSREG_PUBLIC_BASE_URL``, the address people open the pages
  under (a proxy that passes on a Host of its own, nginx's default, would otherwise have
  every form refused). ``null`` is refused too: the pages' ``Referrer-Policy:
  same-origin`` makes our own forms send their real origin (``no-referrer`` made a
  browser send ``null``).

A request with neither header (not a browser, or one from before 2019) is left to the
token alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

# A browser sends these for its own page's form, or for what the person did themselves.
_OWN = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def from_own_origin(request: Request) -> bool:
    """Whether the browser says ``request`` comes from our own origin (or says nothing)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in _OWN:
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    sent = _origin(origin)
    if sent is None:
        return False
    public = request.app.state.ctx.settings.public_base_url
    return sent in (_origin(str(request.base_url)), _origin(public or ""))


def _origin(url: str) -> tuple[str, str, int] | None:
    """An origin's scheme, host and port (the scheme's default spelled out), or None for
    ``null`` or anything that is no origin."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port
