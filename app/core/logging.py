"""JSON log lines, with phone numbers, codes and keys redacted whatever a caller passes in.

One object a line: the time to the millisecond (UTC), the level, the logger, the
message, the request's id when there is one, any extra fields, and the traceback of an
exception, all scrubbed. Third-party loggers that would write user data or noise at
INFO (the Twilio client logs every request it makes) are quieted to WARNING.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import logging.config
import re
import textwrap
import traceback
from typing import Any

import orjson

# Anything that looks like a phone number (7+ digits, optional separators) or a
# bare 4-10 digit code is masked before a line is written.
_PHONE = re.compile(r"\+?\d[\d\- ()]{6,}\d")
# Not inside a word or a decimal (``v1.2345``, ``1234.5``); at a sentence's end, a code.
_CODE = re.compile(r"(?<![\w.])\d{4,10}(?!\w|\.\d)")
# A number written with dots or underscores between its groups (090.1234.5678): ten
# digits or more (a Japanese mobile number without its 0), and not an IPv4 address, so a
# version, a date (2026.12.06), a decimal or a host's address stays readable.
_DOTTED = re.compile(r"\+?\d[\d\- ()._]{6,}\d")
_DOTTED_DIGITS = 10
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# A calendar date where an RFC 3339 instant begins (2026-12-07T20:40:31...). Spared only
# when a number's match is that date alone: digits before it (090 2026-12-07T...) make
# the match a number, masked whole.
_INSTANT_DATE = re.compile(r"(\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01]))(?=T\d\d:)")
_SECRET = re.compile(r"smsreg_(sk|st|ss|inv)_[A-Za-z0-9_\-]+")
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}
# Server lifecycle lines (pids, ports) carry no user data; everything else is scrubbed.
_LIFECYCLE_LOGGERS = {"uvicorn.error", "alembic.runtime.migration"}
_QUIET = ("twilio", "twilio.http_client", "asyncio", "httpx", "urllib3", "multipart")

# Extra fields the app fills from a traceback's frames alone (file, line, source line),
# never from a runtime value: left whole, so a line number past 999 stays readable.
_FRAMES_ONLY = frozenset({"stack"})

# The id of the request being served, for every line written while it is.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def redact(text: str) -> str:
    """Mask numbers, codes and tokens in free text; a calendar date (an RFC 3339 instant's)
    stays readable: its eight digits are no one's number, and a log line that says when
    something ends (a break-glass account) lost its date."""
    text = _SECRET.sub("smsreg_[redacted]", text)
    text = _PHONE.sub(_number_unless_date, text)
    text = _DOTTED.sub(_dotted_number, text)
    pieces = _INSTANT_DATE.split(text)  # text, date, text, ...: a date's digits no code
    pieces[::2] = [_CODE.sub("[redacted-digits]", piece) for piece in pieces[::2]]
    return "".join(pieces)


def _number_unless_date(match: re.Match[str]) -> str:
    date = _INSTANT_DATE.match(match.string, match.start())
    if date is not None and date.end() == match.end():
        return match.group()
    return "[redacted-number]"


def _dotted_number(match: re.Match[str]) -> str:
    found = match.group()
    if sum(c.isdigit() for c in found) < _DOTTED_DIGITS or _ipv4(found):
        return found
    return "[redacted-number]"


def _ipv4(text: str) -> bool:
    """Whether ``text`` is an IPv4 address (090.123.456.78, grouped 3-3-3-2, is not)."""
    return bool(_IPV4.fullmatch(text)) and all(int(part) <= 255 for part in text.split("."))


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def traceback_text(error: BaseException | None) -> str:
    """An exception's traceback as Python prints it, chained exceptions included, with
    each frame's first line (file, line number, function: from the code, never a runtime
    value) left whole, so line 1234 stays line 1234, and the rest redacted: the source
    lines (a literal in the code) and what each exception says. An exception group's
    exceptions follow it, each indented under its number."""
    return _text(
        traceback.TracebackException.from_exception(
            error  # type: ignore[arg-type]  # exc_info's value is set whenever its type is
        )
    )


def _text(first: traceback.TracebackException) -> str:
    chain: list[tuple[traceback.TracebackException, str]] = []
    link: traceback.TracebackException | None = first
    joint = ""
    while link is not None:
        chain.append((link, joint))
        if link.__cause__ is not None:
            link, joint = link.__cause__, _CAUSE
        elif link.__context__ is not None and not link.__suppress_context__:
            link, joint = link.__context__, _CONTEXT
        else:
            link = None
    parts: list[str] = []
    for link, joint in reversed(chain):
        if link.stack:
            parts.append("Traceback (most recent call last):\n")
            for frame in link.stack.format():
                where, _, source = frame.partition("\n")
                parts.append(f"{where}\n{redact(source)}")
        parts += [redact(line) for line in link.format_exception_only()]
        for n, member in enumerate(link.exceptions or (), start=1):
            parts.append(f"+---------------- {n} ----------------\n")
            parts.append(textwrap.indent(_text(member), "| "))
        parts.append(joint)
    return "".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and extra fields."""

    @staticmethod
    def _message(record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name in _LIFECYCLE_LOGGERS and record.levelno <= logging.INFO:
            return _SECRET.sub("smsreg_[redacted]", _PHONE.sub("[redacted-number]", message))
        return redact(message)

    def format(self, record: logging.LogRecord) -> str:
        created = dt.datetime.fromtimestamp(record.created, dt.UTC)
        payload: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._message(record),
        }
        current = request_id.get()
        if current is not None:
            payload["request_id"] = current
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                scrub = isinstance(value, str) and key not in _FRAMES_ONLY
                payload[key] = redact(value) if scrub else value
        if record.exc_info and record.exc_info[0] is not None:
            payload["error_type"] = record.exc_info[0].__name__
            payload["traceback"] = traceback_text(record.exc_info[1])
        return orjson.dumps(payload, default=str).decode()


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """The logging setup as a ``dictConfig`` dictionary: every logger, uvicorn's
    included, through the redacting JSON formatter. uvicorn applies it in each worker
    process it starts (``uvicorn.run(log_config=...)``); configured in the parent alone,
    the workers wrote plain, unredacted text and no access lines."""
    quiet = logging.getLevelName(max(logging.WARNING, logging.getLevelName(level)))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # The app writes its own access line (app.core.observe), by route template.
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
            **{name: {"level": quiet} for name in _QUIET},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    """Send every logger, uvicorn's included, through the redacting JSON formatter."""
    logging.config.dictConfig(logging_config(level))
