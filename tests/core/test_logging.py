"""Log lines never carry a number, a code or a key."""

from __future__ import annotations

import json
import logging

from app.core.logging import JsonFormatter, redact


def test_redact_masks_numbers_codes_and_keys():
    text = redact("to +819012345678 / 090-1234-5678 code 123456 key smsreg_sk_abcDEF_123")
    assert "9012345678" not in text and "1234-5678" not in text
    assert "123456" not in text and "abcDEF" not in text
    session = redact("staff session smsreg_ss_QWErty-99_x and smsreg_st_zzTop")
    assert "QWErty" not in session and "zzTop" not in session


def test_json_lines_redact_messages_and_extras():
    record = logging.makeLogRecord(
        {
            "name": "smsreg.x",
            "levelno": 30,
            "levelname": "WARNING",
            "msg": "sent %s",
            "args": ("+819012345678",),
            "to": "090-1234-5678",
        }
    )
    line = json.loads(JsonFormatter().format(record))
    assert "9012345678" not in json.dumps(line)
    assert line["level"] == "WARNING" and line["logger"] == "smsreg.x"
