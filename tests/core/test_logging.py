"""Log lines never carry a number, a code or a key."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback

import pytest

from app.core.logging import JsonFormatter, redact, traceback_text


def test_redact_masks_numbers_codes_and_keys():
    text = redact("to +819012345678 / 090-1234-5678 code 123456 key smsreg_sk_abcDEF_123")
    assert "9012345678" not in text and "1234-5678" not in text
    assert "123456" not in text and "abcDEF" not in text
    session = redact("staff session smsreg_ss_QWErty-99_x and smsreg_st_zzTop")
    assert "QWErty" not in session and "zzTop" not in session


@pytest.mark.parametrize(
    "number",
    ["090.1234.5678", "090_1234_5678", "+81.90.1234.5678", "90.1234.5678", "090.123.456.78"],
)
def test_a_number_grouped_with_dots_or_underscores_is_masked(number):
    assert redact(f"id {number}.") == "id [redacted-number]."


def test_an_instants_date_stays_readable_and_a_number_near_one_does_not():
    """A break-glass account's warning line said when it ends as
    ``[redacted-number]T20:40:31``: the date's eight digits read as a number."""
    line = '"expires_at":"2026-12-07T20:40:31.731044+00:00"'
    assert redact(line) == line
    assert redact("from 090-1234-5678 at 2026-12-07T09:00Z") == (
        "from [redacted-number] at 2026-12-07T09:00Z"
    )
    for number in ("0901-12-1234", "2026-12-07-1234", "+81-2026-12-07", "2026-12-0712"):
        assert redact(number) == "[redacted-number]", number
    # A number whose last groups read as a date: digits before the date make it a number.
    for number in (
        "090 2012-12-31",
        "(090) 2012-12-31",
        "090.2012-12-31",
        "+81 90 2012-12-31",
        "010 2012-05-06",
        "090 2012-12-31T10:00:00Z",
        "2012-12-31 090 1234",
    ):
        assert not re.search(r"\d{4}", redact(number)), number
    assert redact("on 2026-12-07 at noon") == "on [redacted-number] at noon"  # not an instant


@pytest.mark.parametrize(
    "kept",
    [
        "v1.2.3",
        "10.0.0.1",
        "192.168.100.200",  # a host's address, in a database error
        "took 12.5 ms",
        "rev_1_2",
        "2026.12.06",
        "1234.5678",
        "0.0123456",
    ],
)
def test_short_dotted_figures_stay_readable(kept):
    assert redact(kept) == kept


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


def _raised_at_line_1234(message: str) -> BaseException:
    """An error raised at line 1234 of a module from a second error, which was raised
    while the module handled a third: a chain with a cause and a context, each error
    saying ``message``."""
    body = (
        "def fail(m):\n"
        "    try:\n"
        "        raise KeyError('first ' + m)\n"
        "    except KeyError:\n"
        "        try:\n"
        "            raise ValueError('bad ' + m)\n"
        "        except ValueError as bad:\n"
        "            raise RuntimeError(m) from bad\n"
    )
    source = "\n" * 1226 + body  # the last line of the body is line 1234
    namespace: dict[str, object] = {}
    exec(compile(source, "deep_module.py", "exec"), namespace)  # noqa: S102 (the test's own code)
    try:
        namespace["fail"](message)  # type: ignore[operator]
    except RuntimeError as error:
        return error
    raise AssertionError("fail() did not raise")


def test_a_traceback_keeps_its_line_numbers_and_masks_what_the_errors_say():
    error = _raised_at_line_1234("to 090-1234-5678 code 123456")
    record = logging.makeLogRecord(
        {"name": "smsreg.worker", "levelno": 40, "levelname": "ERROR", "msg": "send failed"}
    )
    record.exc_info = (type(error), error, error.__traceback__)
    text = json.loads(JsonFormatter().format(record))["traceback"]
    assert 'File "deep_module.py", line 1234, in fail' in text
    assert "1234-5678" not in text and "123456" not in text
    assert "The above exception was the direct cause" in text
    assert "During handling of the above exception" in text


@pytest.mark.parametrize("message", ["no digits here", ""])
def test_a_traceback_without_anything_to_mask_is_python_s_own(message):
    error = _raised_at_line_1234(message)
    assert traceback_text(error) == "".join(traceback.format_exception(error))
    assert sys.version_info >= (3, 11)  # the chain's wording this compares against


def test_an_exception_groups_exceptions_are_in_its_traceback_masked():
    """The outbox worker's task group fails with an ExceptionGroup: what each of its
    exceptions was, and where, is in the log (it was only "1 sub-exception")."""
    try:
        try:
            raise ConnectionError("carrier refused 090-1234-5678")
        except ConnectionError as inner:
            raise ExceptionGroup("unhandled errors in a TaskGroup", [inner]) from None
    except ExceptionGroup as group:
        text = traceback_text(group)
    assert "ConnectionError: carrier refused [redacted-number]" in text
    assert "1234-5678" not in text and "test_logging.py" in text


def test_a_code_at_the_end_of_a_sentence_is_masked():
    assert redact("wrong code 123456.") == "wrong code [redacted-digits]."
    assert redact("version 1.2345 and 1234.5") == "version 1.2345 and 1234.5"
