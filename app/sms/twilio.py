"""Production sender: each SMS goes out through Twilio's Messages API with the official client.

Failures are sorted for the outbox worker. A carrier that refused for now (HTTP 429 or
503, a sender's queue that is full, a connection never made, a proxy's refusal that is
not Twilio's) is transient and retried with backoff; a recipient Twilio calls wrong,
unreachable or unsubscribed, and every other refusal, is permanent and never retried,
because sending the same request again would be refused the same way. An answer that
does not say whether the message was created (no answer, any other 5xx, a 2xx without a
message) is an unknown outcome: the message may be on its way, so it is never sent again.

Nothing this module raises or logs carries the recipient, the body or the auth token.
Twilio's own error messages quote the 'To' number, so they are dropped rather than wrapped.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from app.sms.base import SendError, SendResult

ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
# What a message's answer may carry into the outbox's columns: an id (Twilio's are two
# letters and 32 hex digits) and a status word. Anything else came from something in
# between, or is garbage, and written with the outcomes it came back with, it failed
# their write too.
MESSAGE_SID = re.compile(r"[A-Za-z0-9]{1,64}")
MESSAGE_STATUS = re.compile(r"[a-z_]{1,20}")
# Twilio's error codes have five digits; a longer "code" is none of them.
_LONGEST_CODE = 10**8

# Twilio error codes that mean the number or the recipient is wrong, unreachable or has
# opted out. 21xxx come back when the message is created; 30xxx arrive later, in status
# callbacks, and are listed so a callback handler can sort them the same way.
RECIPIENT_ERROR_CODES = frozenset(
    {
        21211,  # invalid 'To' number
        21214,  # 'To' number cannot be reached
        21265,  # 'To' number cannot be a short code
        21408,  # sending to this region is not enabled
        21606,  # the 'From' number cannot send to this 'To' number
        21610,  # the recipient replied STOP
        21612,  # no route between the 'From' and the 'To' number
        21614,  # 'To' number is not a mobile number
        21659,  # the sender is not valid for this destination
        30003,  # unreachable handset
        30004,  # message blocked by the recipient or the carrier
        30005,  # unknown or inactive destination number
        30006,  # landline or unreachable carrier
        30007,  # filtered by the carrier
    }
)

# The recipient replied STOP and Twilio now blocks sends to it (Advanced Opt-Out): at
# the send, or later in a status callback when a Messaging Service queued the message.
OPTED_OUT_ERROR_CODES = frozenset({21610})

# Refusals for now, though their status is 4xx: the sender's queue at Twilio is full
# (21611), or the account's concurrency or rate limit was hit.
BUSY_ERROR_CODES = frozenset({21611, 20429})

# Twilio's ValidityPeriod: 1 to 36000 seconds (its default, ten hours).
MAX_VALIDITY_SECONDS = 36000

NETWORK = "network"
NO_ANSWER = "no_answer"
BAD_RESPONSE = "bad_response"


class RedirectingHttpClient(TwilioHttpClient):
    """A Twilio HTTP client that sends every request to another base URL instead of Twilio's.

    For tests (a local fake) and for a regional edge or a rewriting gateway. The official
    client has no base-URL setting, and its TWILIO_EDGE / TWILIO_REGION handling rewrites
    only the host name, so the whole scheme and host are replaced here, after that step.
    A forward proxy that tunnels TLS needs no rewriting: pass ``proxy=`` instead.
    """

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an absolute http or https URL")
        # Every request carries the auth token in its Basic auth header: plain HTTP only
        # where it cannot leave the machine.
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("plain http is allowed only for a loopback base_url")
        super().__init__(**kwargs)
        self.base_scheme = parts.scheme
        self.base_netloc = parts.netloc
        self.base_path = parts.path.rstrip("/")

    def rewrite(self, url: str) -> str:
        """The URL with the base URL's scheme, host and port, and its path as a prefix."""
        parts = urlsplit(url)
        return urlunsplit(
            (self.base_scheme, self.base_netloc, self.base_path + parts.path, parts.query, "")
        )

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        """Send the request to the base URL rather than to the URL the client built."""
        return super().request(method, self.rewrite(url), *args, **kwargs)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TwilioSender:
    """Sends SMS through Twilio; blocking, so the outbox worker calls it in a thread."""

    name = "twilio"
    blocking = True

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        campaign_messaging_service_sid: str | None = None,
        status_callback: str | None = None,
        http_client: Any = None,
        timeout: float = 10,
        connections: int = 10,
    ) -> None:
        # Messages say which setting is wrong but never echo a value: one of them is a secret.
        if not ACCOUNT_SID.fullmatch(account_sid):
            raise ValueError("account_sid must look like AC followed by 32 hex digits")
        if not auth_token:
            raise ValueError("auth_token is required")
        if (messaging_service_sid is None) == (from_number is None):
            raise ValueError("give exactly one of messaging_service_sid and from_number")
        for name, sid in (
            ("messaging_service_sid", messaging_service_sid),
            ("campaign_messaging_service_sid", campaign_messaging_service_sid),
        ):
            if sid is not None and not MESSAGING_SERVICE_SID.fullmatch(sid):
                raise ValueError(f"{name} must look like MG followed by 32 hex digits")
        if from_number is not None and not from_number.strip():
            raise ValueError("from_number must not be empty")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if http_client is None:
            http_client = TwilioHttpClient(timeout=timeout)
        elif getattr(http_client, "timeout", None) is None:
            # A request without a timeout can hold a worker thread forever.
            http_client.timeout = timeout
        session = getattr(http_client, "session", None)
        if session is not None:
            # As many kept connections as sends at once (the outbox's concurrency): the
            # client's own pool holds min(32, cpu_count + 4), so on a small host every send
            # group logged "Connection pool is full" and opened a new TLS connection per
            # send past it. Its retries, if it was given any, are kept.
            for scheme in ("https://", "http://"):
                retries = session.get_adapter(scheme).max_retries  # as the client was built
                session.mount(scheme, HTTPAdapter(pool_maxsize=connections, max_retries=retries))
        self.messaging_service_sid = messaging_service_sid
        self.from_number = from_number
        self.status_callback = status_callback
        # The same sender options go with every message, so they are built once; campaign
        # messages (bulk) go from their own Messaging Service, when there is one.
        sender: dict[str, str | int] = (
            {"messaging_service_sid": messaging_service_sid}
            if messaging_service_sid is not None
            else {"from_": str(from_number)}
        )
        bulk = (
            {"messaging_service_sid": campaign_messaging_service_sid}
            if campaign_messaging_service_sid is not None
            else sender
        )
        callback = {"status_callback": status_callback} if status_callback else {}
        self._options = {**sender, **callback}
        self._bulk_options = {**bulk, **callback}
        self._client = Client(
            username=account_sid,
            password=auth_token,
            account_sid=account_sid,
            http_client=http_client,
        )

    def send(
        self,
        *,
        to: str,
        body: str,
        reference: str | None = None,
        valid_for: int | None = None,
        bulk: bool = False,
    ) -> SendResult:
        """Hand one message to Twilio; raise a transient or permanent SendError if that fails.

        Its status callback names ``reference`` (``?m=``), so a report that comes before
        the worker has recorded Twilio's message id (or for a message whose answer was
        lost) still finds it; Twilio keeps it queued at most ``valid_for`` seconds. A
        ``bulk`` one goes from the campaigns' Messaging Service, if one is set."""
        options = dict(self._bulk_options if bulk else self._options)
        if self.status_callback and reference is not None:
            options["status_callback"] = f"{self.status_callback}?{urlencode({'m': reference})}"
        if valid_for is not None:
            options["validity_period"] = min(max(valid_for, 1), MAX_VALIDITY_SECONDS)
        try:
            message = self._client.messages.create(to=to, body=body, **options)
        except (TwilioException, requests.RequestException, json.JSONDecodeError) as exc:
            # "from None": the client's exception text quotes the recipient's number, and a
            # chained traceback would print it wherever the SendError is logged.
            raise classify_error(exc) from None
        if not isinstance(message.sid, str) or not MESSAGE_SID.fullmatch(message.sid):
            # A 2xx without a message id, or with one that is none (an empty or foreign
            # body from something in between): it may have been created.
            raise SendError(
                "Twilio's answer named no message", code=BAD_RESPONSE, permanent=False, unknown=True
            )
        status = message.status if isinstance(message.status, str) else ""
        return SendResult(
            carrier=self.name,
            message_id=message.sid,
            # Accepted, whatever word came with it; its status callbacks say the rest.
            status=status if MESSAGE_STATUS.fullmatch(status) else "queued",
        )


def classify_error(exc: BaseException) -> SendError:
    """The SendError for an exception the Twilio client raised, without any of its text."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status = _as_int(exc.status)
        if status:
            return _http_error(status=status, code=exc.code)
    if isinstance(exc, json.JSONDecodeError):
        # A 2xx that is not JSON came from something in between, not from Twilio: the
        # message may have been accepted.
        return SendError(
            "Twilio's answer was not JSON", code=BAD_RESPONSE, permanent=False, unknown=True
        )
    if _never_sent(exc):
        # Refused connection, no route, failed name lookup or TLS handshake, a connect
        # timeout: the request never reached Twilio, so it is safe to send again.
        return SendError(
            f"Twilio could not be reached ({type(exc).__name__})", code=NETWORK, permanent=False
        )
    # The request was written and no answer came (a read timeout, a connection dropped
    # mid-answer): Twilio may have accepted it, and its Messages API has no idempotency
    # key, so sending again could deliver a second SMS.
    return SendError(
        f"Twilio did not answer ({type(exc).__name__})",
        code=NO_ANSWER,
        permanent=False,
        unknown=True,
    )


def _never_sent(exc: BaseException) -> bool:
    """Whether a client-side failure happened before the request was written."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return True
    if isinstance(exc, requests.exceptions.ReadTimeout | requests.exceptions.ChunkedEncodingError):
        return False
    if isinstance(exc, requests.ConnectionError):
        seen: set[int] = set()
        pending: list[object] = [exc, *exc.args]
        while pending:
            item = pending.pop()
            if id(item) in seen or item is None:
                continue
            seen.add(id(item))
            if isinstance(item, NewConnectionError | NameResolutionError):
                return True
            if isinstance(item, MaxRetryError):
                pending.append(item.reason)
            elif isinstance(item, BaseException):
                pending.extend([item.__cause__, item.__context__, *item.args])
        return False
    return False


def _http_error(*, status: int, code: object) -> SendError:
    twilio_code = _as_int(code)
    if twilio_code is not None and not 0 < twilio_code < _LONGEST_CODE:
        twilio_code = None  # no code of Twilio's: the status alone says what happened
    if twilio_code == status:
        # The client's stand-in for an answer that was not Twilio's JSON error: the HTTP
        # status in the code's place (Twilio's own codes have five digits).
        twilio_code = None
    label = str(twilio_code or status)
    where = f"HTTP {status}, code {label}"
    if status == 401:
        # Our credentials, not the message: a rotated or mistyped token is fixed by an
        # operator, and failing every queued code at once would lose them all. The
        # worker's attempt cap still ends the retries.
        return SendError(f"Twilio refused our credentials ({where})", code=label, permanent=False)
    if status in (429, 503) or twilio_code in BUSY_ERROR_CODES:
        return SendError(f"Twilio is busy or unavailable ({where})", code=label, permanent=False)
    if twilio_code is None and 400 <= status < 500:
        # Not Twilio's refusal (its errors carry a code) but something's in between, a
        # proxy or a gateway: nothing about the message, so not a reason to fail it.
        return SendError(f"Twilio could not be reached ({where})", code=label, permanent=False)
    if status >= 500:
        # An error inside Twilio, or a gateway's (502, 504) that lost Twilio's answer:
        # the message may have been created before it, and sending again could deliver
        # it twice.
        return SendError(
            f"Twilio failed mid-request ({where})", code=label, permanent=False, unknown=True
        )
    if twilio_code in RECIPIENT_ERROR_CODES:
        return SendError(
            f"Twilio refused the recipient ({where})",
            code=label,
            permanent=True,
            opted_out=twilio_code in OPTED_OUT_ERROR_CODES,
        )
    return SendError(f"Twilio refused the message ({where})", code=label, permanent=True)


def _as_int(value: object) -> int | None:
    # The client passes the error body's fields through as they came: normally ints.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
