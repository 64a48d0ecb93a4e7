"""JSON log lines with phone numbers and codes redacted, whatever a caller passes in."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson

# Anything that looks like a phone number (7+ digits, optional separators) or a
# bare 4-10 digit code is masked before a line is written.
_PHONE = re.compile(r"\+?\d[\d\- ()]{6,}\d")
_CODE = re.compile(r"(?<![\w.])\d{4,10}(?![\w.])")
_SECRET = re.compile(r"smsreg_(sk|st|ss)_[A-Za-z0-9_\-]+")
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}
# Server lifecycle lines (pids, ports) carry no user data; everything else is scrubbed.
_LIFECYCLE_LOGGERS = {"uvicorn.error", "alembic.runtime.migration"}


def redact(text: str) -> str:
    """Mask numbers, codes and tokens in free text."""
    text = _SECRET.sub("smsreg_[redacted]", text)
    text = _PHONE.sub("[redacted-number]", text)
    return _CODE.sub("[redacted-digits]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and extra fields."""

    @staticmethod
    def _message(record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name in _LIFECYCLE_LOGGERS and record.levelno <= logging.INFO:
            return _SECRET.sub("smsreg_[redacted]", _PHONE.sub("[redacted-number]", message))
        return redact(message)

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._message(record),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info and record.exc_info[0] is not None:
            payload["error_type"] = record.exc_info[0].__name__
        return orjson.dumps(payload, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """Send every logger, uvicorn's included, through the redacting JSON formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
