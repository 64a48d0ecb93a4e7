"""A fake of Twilio's Messages API for tests: real HTTP on 127.0.0.1, with scripted failures.

It serves ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` in a background thread
the way Twilio does for the official client: HTTP Basic auth AccountSid:AuthToken, a
form-encoded request, a 201 message resource shaped by the spec's
``api.v2010.account.message`` schema, and Twilio JSON error bodies (``code``, ``message``,
``more_info``, ``status``) for refusals. Its error messages quote the 'To' number as
Twilio's do, so tests can check that nothing passes them on.

Faults are scripted: ``fail_next`` answers the next requests with an HTTP error,
``close_next`` drops them without an answer, ``stall_next`` holds them past the client's
timeout, ``accept_then_stall_next`` accepts a message and answers only after the client
has given up, ``latency`` delays every answer, and ``go_down``/``come_back`` make it
unavailable until told otherwise.

The spec is the cut of Twilio's OpenAPI description in tests/fixtures/twilio
(override with SMSREG_TWILIO_SPEC); test_twilio.py validates the fake against it.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hmac
import json
import math
import os
import re
import socket
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import pytest

# A copy of ../shared/data/twilio kept in the repo, so CI always validates against it.
SPEC_PATH = Path(
    os.environ.get(
        "SMSREG_TWILIO_SPEC",
        str(Path(__file__).resolve().parents[1] / "fixtures/twilio/twilio_api_v2010_messages.json"),
    )
)

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token-5f1c2d9e"
MESSAGING_SERVICE_SID = "MG" + "fedcba9876543210" * 2
FROM_NUMBER = "+15005550006"

API_VERSION = "2010-04-01"
MESSAGES_PATH = re.compile(r"/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MAX_BODY_CHARS = 1600
MAX_REQUEST_BYTES = 64 * 1024

# GSM 03.38: the basic set costs one septet a character, the extension set two.
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SentMessage:
    """A message the fake accepted."""

    sid: str
    to: str
    body: str
    from_: str | None
    messaging_service_sid: str | None
    status_callback: str | None


@dataclass(frozen=True)
class Fault:
    """One scripted answer: an HTTP error, a dropped connection, or a stall."""

    action: Literal["error", "close", "stall", "late"]
    status: int = 503
    code: int | None = None
    message: str | None = None
    seconds: float = 0.0
    body: bytes | None = None


class FakeTwilio:
    """Twilio's Messages API on an ephemeral 127.0.0.1 port, served from a thread."""

    def __init__(self, *, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._faults: deque[Fault] = deque()
        self._down: Literal["error", "close"] | None = None
        self._messages: list[SentMessage] = []
        self._forms: list[dict[str, list[str]]] = []
        self._created: list[dict[str, Any]] = []
        self._requests = 0
        self.latency = 0.0  # seconds every accepted message waits for its answer
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> FakeTwilio:
        """Listen on a free loopback port and serve in a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True  # a stalled handler must not hold up stop()
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release stalled requests, stop serving and close the socket."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Where to point RedirectingHttpClient."""
        return f"http://127.0.0.1:{self.port}"

    # Scripting

    def fail_next(
        self,
        *,
        status: int = 503,
        code: int | None = None,
        message: str | None = None,
        body: bytes | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with this HTTP status (a Twilio JSON error
        when ``code`` is given, else ``body`` as JSON, else a plain-text page like a load
        balancer's)."""
        self._script(Fault("error", status=status, code=code, message=message, body=body), times)

    def close_next(self, *, times: int = 1) -> None:
        """Drop the next ``times`` connections without answering."""
        self._script(Fault("close"), times)

    def stall_next(self, *, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` requests ``seconds`` (or until stop), then drop them."""
        self._script(Fault("stall", seconds=seconds), times)

    def accept_then_stall_next(self, *, seconds: float, times: int = 1) -> None:
        """Accept the next ``times`` messages, then answer only after ``seconds`` (past
        the client's timeout): the carrier took them, the client never heard."""
        self._script(Fault("late", seconds=seconds), times)

    def go_down(self, *, mode: Literal["error", "close"] = "error") -> None:
        """Fail every request (503, or a dropped connection) until ``come_back``."""
        with self._lock:
            self._down = mode

    def come_back(self) -> None:
        """Serve normally again."""
        with self._lock:
            self._down = None

    def _script(self, fault: Fault, times: int) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    # What it saw

    @property
    def messages(self) -> list[SentMessage]:
        """Every message accepted, in order."""
        with self._lock:
            return list(self._messages)

    @property
    def forms(self) -> list[dict[str, list[str]]]:
        """The raw form of every authenticated request to the Messages resource."""
        with self._lock:
            return [dict(form) for form in self._forms]

    @property
    def created(self) -> list[dict[str, Any]]:
        """Every 201 body sent, for contract checks."""
        with self._lock:
            return [dict(body) for body in self._created]

    @property
    def request_count(self) -> int:
        """How many requests arrived, answered or not."""
        with self._lock:
            return self._requests

    # Serving (called from handler threads)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            self._requests += 1
            if self._down == "error":
                return Fault("error", status=503, code=20503, message="Service unavailable")
            if self._down == "close":
                return Fault("close")
            return self._faults.popleft() if self._faults else None

    def _record(self, form: dict[str, list[str]]) -> None:
        with self._lock:
            self._forms.append(form)

    def _accept(self, message: SentMessage, resource: dict[str, Any]) -> None:
        with self._lock:
            self._messages.append(message)
            self._created.append(resource)

    def _resource(self, form: dict[str, str]) -> tuple[SentMessage, dict[str, Any]]:
        sid = "SM" + uuid.uuid4().hex
        service = form.get("MessagingServiceSid")
        sender = form.get("From")
        body = form["Body"]
        now = email.utils.format_datetime(datetime.now(UTC).replace(microsecond=0))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        message = SentMessage(
            sid=sid,
            to=form["To"],
            body=body,
            from_=sender,
            messaging_service_sid=service,
            status_callback=form.get("StatusCallback"),
        )
        # As Twilio answers: through a Messaging Service with no 'From', the message is
        # "accepted" and has no sender or segment count yet; otherwise it is "queued".
        pooled = service is not None and sender is None
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "0" if pooled else str(segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if pooled else "queued",
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": form["To"],
            "uri": uri,
        }
        return message, resource


def segments(body: str) -> int:
    """How many SMS segments ``body`` takes: GSM-7 if it can, UCS-2 otherwise."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body):
        units = len(body) + sum(ch in GSM7_EXTENSION for ch in body)
        single, part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, part = 70, 67
    return 1 if units <= single else math.ceil(units / part)


def twilio_error(*, status: int, code: int, message: str) -> dict[str, Any]:
    """A Twilio JSON error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeTwilio/1.0"
    # HTTP/1.0: one request a connection, so a dropped connection never poisons a pool.
    protocol_version = "HTTP/1.0"
    timeout = 5  # a client that stops mid-request must not pin a thread

    @property
    def fake(self) -> FakeTwilio:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._read_body()
        self._json(405, twilio_error(status=405, code=20004, message="Method not allowed"))

    def do_POST(self) -> None:
        raw = self._read_body()
        fault = self.fake._next_fault()
        if fault is not None and fault.action != "late" and self._fault(fault):
            return
        match = MESSAGES_PATH.fullmatch(self.path)
        if match is None:
            self._json(
                404,
                twilio_error(
                    status=404, code=20404, message="The requested resource was not found"
                ),
            )
            return
        if not self._authorized(match["sid"]):
            self._json(401, twilio_error(status=401, code=20003, message="Authenticate"))
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        text = raw.decode("utf-8", errors="replace")
        form = (
            parse_qs(text, keep_blank_values=True)
            if content_type == "application/x-www-form-urlencoded"
            else {}
        )
        self.fake._record(form)
        single = {key: values[-1] for key, values in form.items()}
        refusal = _refusal(single)
        if refusal is not None:
            self._json(400, twilio_error(status=400, code=refusal[0], message=refusal[1]))
            return
        message, resource = self.fake._resource(single)
        self.fake._accept(message, resource)
        delay = fault.seconds if fault is not None else self.fake.latency
        if delay:
            self.fake._stopping.wait(delay)
        self._json(201, resource)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(min(max(length, 0), MAX_REQUEST_BYTES))

    def _fault(self, fault: Fault) -> bool:
        """Act out a fault; False if the request should be served after all."""
        if fault.action == "stall":
            self.fake._stopping.wait(fault.seconds)
            self.close_connection = True
            return True
        if fault.action == "close":
            self.close_connection = True
            return True
        if fault.body is not None:
            self._send(fault.status, fault.body, "application/json")
            return True
        if fault.code is None:
            # Like a load balancer in front of Twilio: an error page, not JSON.
            self._send(fault.status, b"upstream unavailable\n", "text/plain")
            return True
        message = fault.message or f"Scripted failure {fault.code}"
        self._json(
            fault.status, twilio_error(status=fault.status, code=fault.code, message=message)
        )
        return True

    def _authorized(self, path_sid: str) -> bool:
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Both compared in full, in constant time, as a real server would.
        ok_user = hmac.compare_digest(user.encode(), self.fake.account_sid.encode())
        ok_password = hmac.compare_digest(password.encode(), self.fake.auth_token.encode())
        return ok_user and ok_password and path_sid == user

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (its timeout); nothing to answer


def _refusal(form: dict[str, str]) -> tuple[int, str] | None:
    """Twilio's error code and message for a request it would refuse, or None."""
    to = form.get("To", "")
    if not to:
        return 21604, "A 'To' phone number is required."
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return 21603, "A 'From' phone number is required."
    if not form.get("Body"):  # media and content templates are not faked
        return 21602, "Message body is required."
    if not E164.fullmatch(to):
        # Twilio's message quotes the number; the sender must not pass it on.
        return 21211, f"The 'To' number {to} is not a valid phone number."
    if len(form["Body"]) > MAX_BODY_CHARS:
        return 21617, "The concatenated message body exceeds the 1600 character limit."
    return None


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released), for connection-refused tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(name="fake_twilio")
def fake_twilio_fixture() -> Iterator[FakeTwilio]:
    """A running FakeTwilio, stopped after the test."""
    with FakeTwilio() as fake:
        yield fake
