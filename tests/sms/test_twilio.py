"""The Twilio sender against a local fake of Twilio, and the fake against Twilio's own spec."""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from app.core.config import Settings
from app.sms.base import SendError
from app.sms.factory import build_sender
from app.sms.twilio import (
    RECIPIENT_ERROR_CODES,
    RedirectingHttpClient,
    TwilioSender,
    classify_error,
)
from tests.sms.fake_twilio import (  # noqa: F401 (fake_twilio_fixture is a pytest fixture)
    FROM_NUMBER,
    MESSAGING_SERVICE_SID,
    SPEC_PATH,
    FakeTwilio,
    fake_twilio_fixture,
    unused_port,
)

TO = "+819012345678"
BODY = "Your example code is 482913. Do not share it.\n\n@localhost #482913"
SPEC_URI = "urn:twilio:api:v2010:messages"
MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
MESSAGE_SCHEMA = "api.v2010.account.message"


def make_sender(
    fake: FakeTwilio,
    *,
    base_url: str | None = None,
    timeout: float = 2,
    **overrides: Any,
) -> TwilioSender:
    """A sender on the real client, pointed at the fake (or at ``base_url``)."""
    http = RedirectingHttpClient(base_url or fake.base_url, timeout=timeout)
    http.session.trust_env = False  # no proxy from the environment: loopback only
    options: dict[str, Any] = {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "messaging_service_sid": MESSAGING_SERVICE_SID,
        "from_number": None,
        "http_client": http,
    }
    options.update(overrides)
    return TwilioSender(**options)


def send_error(sender: TwilioSender, *, to: str = TO, body: str = BODY) -> SendError:
    """The SendError that sending raises (the test fails if it raises none)."""
    with pytest.raises(SendError) as info:
        sender.send(to=to, body=body)
    return info.value


# The contract: Twilio's OpenAPI description, made checkable by jsonschema


def openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema: ``nullable`` admits null; x- keys dropped."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: openapi_to_jsonschema(value)
        for key, value in node.items()
        if not key.startswith("x-") and key != "nullable"
    }
    if node.get("nullable") is True:
        if "$ref" in out:
            out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@cache
def spec() -> dict[str, Any]:
    """Twilio's Messages spec as published; the tests that need it skip if it is absent."""
    assert SPEC_PATH.is_file(), f"Twilio's spec is missing at {SPEC_PATH}"
    document: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return document


def _e164_or_channel(value: object) -> bool:
    return not isinstance(value, str) or bool(
        re.fullmatch(r"\+[1-9][0-9]{1,14}|[a-z]+:\+?[0-9A-Za-z]+", value)
    )


def _rfc2822_gmt(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    offset = moment.utcoffset()
    return offset is not None and offset.total_seconds() == 0  # "in GMT"


def _absolute_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme and urlsplit(value).netloc)


def _uri_map(value: object) -> bool:
    return not isinstance(value, dict) or all(
        isinstance(uri, str) and uri.startswith("/2010-04-01/") for uri in value.values()
    )


def format_checker() -> FormatChecker:
    """jsonschema's checker plus the spec's own formats, which it would otherwise skip."""
    checker = FormatChecker()
    checker.checks("phone-number")(_e164_or_channel)
    checker.checks("date-time-rfc-2822")(_rfc2822_gmt)
    checker.checks("uri")(_absolute_uri)
    checker.checks("uri-map")(_uri_map)
    checker.checks("currency")(lambda value: not isinstance(value, str) or value.isalpha())
    return checker


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``$ref``s resolve inside the converted spec."""
    resource = DRAFT202012.create_resource(openapi_to_jsonschema(spec()))
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return Draft202012Validator(schema, registry=registry, format_checker=format_checker())


def message_validator(*, strict: bool) -> Draft202012Validator:
    """The spec's message schema; strict also demands exactly the spec's fields, as the spec
    itself lists none as required and allows any extra."""
    schema: dict[str, Any] = {"$ref": f"{SPEC_URI}#/components/schemas/{MESSAGE_SCHEMA}"}
    if strict:
        names = sorted(spec()["components"]["schemas"][MESSAGE_SCHEMA]["properties"])
        schema = {"allOf": [schema], "required": names, "propertyNames": {"enum": names}}
    return validator(schema)


def create_operation() -> dict[str, Any]:
    """The spec's CreateMessage operation."""
    operation: dict[str, Any] = spec()["paths"][MESSAGES]["post"]
    return operation


def request_schema() -> dict[str, Any]:
    """CreateMessage's form-encoded request body schema."""
    form = create_operation()["requestBody"]["content"]["application/x-www-form-urlencoded"]
    schema: dict[str, Any] = form["schema"]
    return schema


def form_instance(form: dict[str, list[str]]) -> dict[str, Any]:
    """A raw form as the JSON instance the request schema describes: each field typed by its
    schema, and sent once unless it is an array."""
    properties = request_schema()["properties"]
    instance: dict[str, Any] = {}
    for name, values in form.items():
        kind = properties.get(name, {}).get("type")
        if kind == "array":
            instance[name] = values
            continue
        assert len(values) == 1, f"{name} sent {len(values)} times"
        value: Any = values[0]
        if kind == "boolean" and value in ("true", "false"):
            value = value == "true"
        elif kind == "integer" and value.lstrip("-").isdigit():
            value = int(value)
        elif kind == "number":
            try:
                value = float(value)
            except ValueError:
                pass
        instance[name] = value
    return instance


def check_request(form: dict[str, list[str]]) -> None:
    """Validate a form against the CreateMessage request body, and its x-twilio conditions
    (one of from/messaging_service_sid; one of body/media_url/content_sid)."""
    instance = form_instance(form)
    names = sorted(request_schema()["properties"])
    form_schema = "requestBody/content/application~1x-www-form-urlencoded/schema"
    schema = {
        "allOf": [{"$ref": f"{SPEC_URI}#/paths/{_pointer(MESSAGES)}/post/{form_schema}"}],
        "propertyNames": {"enum": names},  # the client sends nothing undocumented
    }
    validator(schema).validate(instance)
    for group in create_operation()["x-twilio"]["conditional"]:
        fields = ["".join(part.capitalize() for part in name.split("_")) for name in group]
        assert any(field in instance for field in fields), f"none of {fields} sent"


def _pointer(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


def test_the_fakes_201_body_follows_the_spec(fake_twilio: FakeTwilio):
    make_sender(fake_twilio).send(to=TO, body=BODY)
    make_sender(fake_twilio, messaging_service_sid=None, from_number=FROM_NUMBER).send(
        to=TO, body="ünïcödé 🙂 " * 10
    )
    created = fake_twilio.created
    assert len(created) == 2
    for body in created:
        message_validator(strict=True).validate(body)
    assert created[1]["num_segments"] == "2"  # UCS-2: 70 units a single SMS, 67 a part


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sid", "XX" + "0" * 32),
        ("account_sid", "AC123"),
        ("status", "posted"),
        ("direction", None),  # the enums are not nullable
        ("date_created", "2026-01-02T03:04:05Z"),  # ISO 8601, not RFC 2822
        ("num_segments", 1),  # a string in this API
        ("error_code", "30003"),  # and this one an integer
    ],
)
def test_the_contract_check_has_teeth(fake_twilio: FakeTwilio, field, value):
    make_sender(fake_twilio).send(to=TO, body=BODY)
    body = {**fake_twilio.created[0], field: value}
    with pytest.raises(ValidationError):
        message_validator(strict=False).validate(body)


def test_the_spec_alone_requires_no_field_at_all():
    # Why the strict check exists: the schema accepts an empty object.
    message_validator(strict=False).validate({})
    with pytest.raises(ValidationError):
        message_validator(strict=True).validate({})


@pytest.mark.parametrize("via", ["messaging_service", "from_number", "status_callback"])
def test_the_client_sends_what_the_spec_asks_for(fake_twilio: FakeTwilio, via):
    overrides: dict[str, Any] = {}
    if via == "from_number":
        overrides = {"messaging_service_sid": None, "from_number": FROM_NUMBER}
    if via == "status_callback":
        overrides = {"status_callback": "https://sms.example.com/twilio/status"}
    make_sender(fake_twilio, **overrides).send(to=TO, body=BODY)
    [form] = fake_twilio.forms
    check_request(form)
    with pytest.raises(ValidationError):
        check_request({**form, "MessagingServiceSid": ["MG123"]})


# Sending


def test_sends_through_a_messaging_service(fake_twilio: FakeTwilio):
    result = make_sender(fake_twilio).send(to=TO, body=BODY)
    [message] = fake_twilio.messages
    assert (message.to, message.body) == (TO, BODY)
    assert message.messaging_service_sid == MESSAGING_SERVICE_SID
    assert message.from_ is None and message.status_callback is None
    assert result.carrier == "twilio"
    assert result.message_id == message.sid
    assert result.status == "accepted"  # Twilio's first status for a pooled sender


def test_sends_from_a_number_with_a_status_callback(fake_twilio: FakeTwilio, caplog):
    caplog.set_level(logging.DEBUG)
    callback = "https://sms.example.com/twilio/status"
    sender = make_sender(
        fake_twilio, messaging_service_sid=None, from_number=FROM_NUMBER, status_callback=callback
    )
    result = sender.send(to=TO, body=BODY)
    [message] = fake_twilio.messages
    assert (message.to, message.body, message.from_) == (TO, BODY, FROM_NUMBER)
    assert message.messaging_service_sid is None
    assert message.status_callback == callback
    assert (result.message_id, result.status) == (message.sid, "queued")
    assert "twilio.http_client" in {record.name for record in caplog.records}
    for secret in (TO, BODY, fake_twilio.auth_token):
        assert secret not in caplog.text  # the client logs requests, but not their bodies


@pytest.mark.parametrize(("valid_for", "sent"), [(540, "540"), (0, "1"), (99_999, "36000")])
def test_each_message_names_itself_in_its_callback_and_bounds_its_queue_time(
    fake_twilio: FakeTwilio, valid_for, sent
):
    """Its status callback names the outbox's message (a report is matched even before
    Twilio's id is recorded), and Twilio keeps it queued no longer than it is of use,
    within what Twilio accepts (1 to 36000 s; its default is ten hours)."""
    callback = "https://sms.example.com/v1/sms/twilio/status"
    sender = make_sender(fake_twilio, status_callback=callback)
    sender.send(to=TO, body=BODY, reference="msg_0A1b-2_c", valid_for=valid_for)
    sender.send(to=TO, body=BODY)
    [named, plain] = fake_twilio.messages
    assert named.status_callback == callback + "?m=msg_0A1b-2_c"
    assert plain.status_callback == callback
    [first, second] = fake_twilio.forms
    assert first["ValidityPeriod"] == [sent]
    assert "ValidityPeriod" not in second


def test_campaign_messages_go_from_their_own_messaging_service(fake_twilio: FakeTwilio):
    """A STOP to a campaign then blocks only campaigns at Twilio, and a campaign's queue
    never holds a code; without one, both go from the same sender."""
    campaigns = "MG" + "c" * 32
    callback = "https://sms.example.com/v1/sms/twilio/status"
    sender = make_sender(
        fake_twilio, campaign_messaging_service_sid=campaigns, status_callback=callback
    )
    sender.send(to=TO, body=BODY)
    sender.send(to=TO, body="クーポン", bulk=True)
    make_sender(fake_twilio).send(to=TO, body="クーポン", bulk=True)
    code, campaign, shared = fake_twilio.messages
    assert code.messaging_service_sid == MESSAGING_SERVICE_SID
    assert campaign.messaging_service_sid == campaigns
    assert shared.messaging_service_sid == MESSAGING_SERVICE_SID
    assert code.status_callback == campaign.status_callback == callback


def test_the_settings_give_campaigns_their_messaging_service(fake_twilio: FakeTwilio):
    settings = Settings(
        sms_sender="twilio",
        twilio_account_sid=fake_twilio.account_sid,
        twilio_auth_token=fake_twilio.auth_token,
        twilio_messaging_service_sid=MESSAGING_SERVICE_SID,
        twilio_campaign_messaging_service_sid="MG" + "c" * 32,
        twilio_api_base_url=fake_twilio.base_url,
        public_base_url="https://sms.example.co.jp",
        _env_file=None,
    )
    sender = build_sender(settings)
    sender.send(to=TO, body="クーポン", reference="msg_1", bulk=True)
    [campaign] = fake_twilio.messages
    assert campaign.messaging_service_sid == "MG" + "c" * 32
    assert campaign.status_callback == "https://sms.example.co.jp/v1/sms/twilio/status?m=msg_1"


def test_as_many_sends_at_once_as_the_outbox_makes_keep_their_connections(
    fake_twilio: FakeTwilio, caplog
):
    """The official client keeps cpu_count + 4 connections: with the outbox's eight sends
    at once on a 2-core host, every group logged urllib3's "Connection pool is full" and
    opened a new TLS connection for each send past six."""
    # More than the client's pools hold anywhere: https cpu_count + 4, plain http 10.
    at_once = min(64, max((os.cpu_count() or 1) + 4, 10) + 4)
    settings = Settings(
        sms_sender="twilio",
        twilio_account_sid=fake_twilio.account_sid,
        twilio_auth_token=fake_twilio.auth_token,
        twilio_messaging_service_sid=MESSAGING_SERVICE_SID,
        twilio_api_base_url=fake_twilio.base_url,
        outbox_concurrency=at_once,
        _env_file=None,
    )
    sender = build_sender(settings)
    fake_twilio.latency = 0.2  # all of them in flight together
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        for _ in range(2):
            with ThreadPoolExecutor(max_workers=at_once) as pool:
                list(pool.map(lambda n: sender.send(to=TO, body=f"code {n}"), range(at_once)))
    assert len(fake_twilio.messages) == 2 * at_once
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_the_pool_keeps_the_retries_the_client_was_built_with(fake_twilio: FakeTwilio):
    http = RedirectingHttpClient(fake_twilio.base_url, timeout=2, max_retries=3)
    make_sender(fake_twilio, http_client=http, connections=20)
    adapter = http.session.get_adapter("https://api.twilio.com/2010-04-01")
    assert adapter.max_retries.total == 3


def test_one_sender_sends_many(fake_twilio: FakeTwilio):
    sender = make_sender(fake_twilio)
    ids = [sender.send(to=TO, body=f"code {n}").message_id for n in range(3)]
    assert ids == [message.sid for message in fake_twilio.messages]
    assert len(set(ids)) == 3


# Errors: what the outbox retries and what it gives up on


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (21211, f"The 'To' number {TO} is not a valid phone number."),
        (21610, "Attempt to send to unsubscribed recipient"),
        (21614, f"'To' number {TO} is not a valid mobile number"),
    ],
)
def test_a_refused_recipient_is_permanent(fake_twilio: FakeTwilio, code, message):
    fake_twilio.fail_next(status=400, code=code, message=message)
    error = send_error(make_sender(fake_twilio))
    assert (error.permanent, error.code) == (True, str(code))
    # Only "unsubscribed recipient" is the recipient's own word to stop.
    assert error.opted_out == (code == 21610)
    assert fake_twilio.messages == []


def test_twilio_refusing_a_malformed_number_leaks_neither_number_nor_body(
    fake_twilio: FakeTwilio, caplog
):
    caplog.set_level(logging.DEBUG)
    bad = "+0-800-555-0199"
    error = send_error(make_sender(fake_twilio), to=bad)
    assert (error.permanent, error.code) == (True, "21211")
    shown = "".join(traceback.format_exception(error)) + repr(error) + caplog.text
    for secret in (bad, BODY, "482913", fake_twilio.auth_token):
        assert secret not in shown
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.parametrize("status", [403, 404, 407])
def test_a_refusal_that_is_not_twilios_is_transient(fake_twilio: FakeTwilio, status):
    """A 4xx without Twilio's error body came from a proxy or gateway in between: it
    says nothing about the message, which is sent again later rather than failed."""
    fake_twilio.fail_next(status=status)
    error = send_error(make_sender(fake_twilio))
    assert (error.permanent, error.code, error.unknown) == (False, str(status), False)


def test_other_refusals_are_permanent(fake_twilio: FakeTwilio):
    error = send_error(make_sender(fake_twilio), body="x" * 1601)
    assert (error.permanent, error.code) == (True, "21617")


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [(503, None, "503"), (503, 20503, "20503"), (429, 20429, "20429"), (400, 21611, "21611")],
)
def test_a_busy_carrier_is_transient(fake_twilio: FakeTwilio, status, code, expected):
    """Refused for now (429, 503, the sender's queue full): sent again later."""
    fake_twilio.fail_next(status=status, code=code, message="Too Many Requests")
    error = send_error(make_sender(fake_twilio))
    assert (error.permanent, error.code, error.unknown) == (False, expected, False)


@pytest.mark.parametrize(
    ("status", "code", "expected"), [(500, 20500, "20500"), (502, None, "502"), (504, None, "504")]
)
def test_a_failure_mid_request_is_an_unknown_outcome(
    fake_twilio: FakeTwilio, status, code, expected
):
    """An error inside Twilio or a gateway's may come after the message was created:
    never sent again."""
    fake_twilio.fail_next(status=status, code=code, message="Internal Server Error")
    error = send_error(make_sender(fake_twilio))
    assert (error.permanent, error.code, error.unknown) == (False, expected, True)


def test_a_success_that_names_no_message_is_an_unknown_outcome(fake_twilio: FakeTwilio):
    """A 2xx with no message in it came from something in between: Twilio may have
    created the message, so it is not sent again."""
    fake_twilio.fail_next(status=201, body=b"{}")
    error = send_error(make_sender(fake_twilio))
    assert (error.permanent, error.code, error.unknown) == (False, "bad_response", True)


@pytest.mark.parametrize(
    "resource",
    [
        {"sid": "SM" + "a" * 98, "status": "queued"},  # no id would fit where it is kept
        {"sid": "SM0123 '; --", "status": "queued"},
        {"sid": 12345, "status": "queued"},
    ],
)
def test_a_success_whose_message_id_is_none_is_an_unknown_outcome(
    fake_twilio: FakeTwilio, resource
):
    """A 2xx whose id could not be kept failed the write of every outcome recorded with
    it (one statement): good sends of other numbers ended unknown. It is this message's
    own unknown outcome now, before anything is written."""
    fake_twilio.fail_next(status=201, body=json.dumps(resource).encode())
    error = send_error(make_sender(fake_twilio))
    assert (error.permanent, error.code, error.unknown) == (False, "bad_response", True)


def test_a_success_with_a_status_word_of_its_own_is_accepted_as_queued(fake_twilio: FakeTwilio):
    sid = "SM" + "0" * 32
    fake_twilio.fail_next(status=201, body=json.dumps({"sid": sid, "status": "x" * 60}).encode())
    result = make_sender(fake_twilio).send(to=TO, body=BODY)
    assert (result.message_id, result.status) == (sid, "queued")


def test_an_error_code_that_is_none_of_twilios_is_left_out(fake_twilio: FakeTwilio):
    """A code too long to be Twilio's (its have five digits) would not fit where it is
    kept either: the HTTP status says what happened."""
    fake_twilio.fail_next(status=500, body=json.dumps({"code": 10**30, "status": 500}).encode())
    error = send_error(make_sender(fake_twilio))
    assert (error.permanent, error.code, error.unknown) == (False, "500", True)


def test_wrong_auth_token_is_retried_later_and_never_leaks(fake_twilio: FakeTwilio, caplog):
    caplog.set_level(logging.DEBUG)
    token = "not-the-token-7d41e0c2aa"
    error = send_error(make_sender(fake_twilio, auth_token=token))
    # Transient: an operator fixes the token; queued codes must not all fail meanwhile.
    assert (error.permanent, error.code) == (False, "20003")
    shown = str(error) + repr(error) + "".join(traceback.format_exception(error)) + caplog.text
    assert token not in shown
    assert fake_twilio.messages == []


def test_nothing_listening_is_a_transient_network_error(fake_twilio: FakeTwilio):
    sender = make_sender(fake_twilio, base_url=f"http://127.0.0.1:{unused_port()}")
    started = time.monotonic()
    error = send_error(sender)
    assert (error.permanent, error.code) == (False, "network")
    assert time.monotonic() - started < 2


def test_nothing_listening_was_never_sent(fake_twilio: FakeTwilio):
    sender = make_sender(fake_twilio, base_url=f"http://127.0.0.1:{unused_port()}")
    assert not send_error(sender).unknown  # safe to send again


def test_a_connection_dropped_after_the_request_is_an_unknown_outcome(fake_twilio: FakeTwilio):
    """The request was written and no answer came: Twilio may have accepted it."""
    fake_twilio.close_next()
    error = send_error(make_sender(fake_twilio))
    assert (error.permanent, error.code, error.unknown) == (False, "no_answer", True)


def test_a_carrier_that_does_not_answer_times_out_as_an_unknown_outcome(fake_twilio: FakeTwilio):
    fake_twilio.stall_next(seconds=3)
    started = time.monotonic()
    error = send_error(make_sender(fake_twilio, timeout=0.3))
    assert (error.permanent, error.code, error.unknown) == (False, "no_answer", True)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("mode", ["error", "close"])
def test_down_for_a_while_then_back(fake_twilio: FakeTwilio, mode):
    sender = make_sender(fake_twilio)
    fake_twilio.go_down(mode=mode)
    errors = [send_error(sender) for _ in range(3)]
    assert all(not error.permanent for error in errors)
    assert {error.code for error in errors} == ({"20503"} if mode == "error" else {"no_answer"})
    # A 503 is Twilio's own refusal; a dropped connection may have been accepted.
    assert {error.unknown for error in errors} == {mode == "close"}
    fake_twilio.come_back()
    result = sender.send(to=TO, body=BODY)
    assert [message.sid for message in fake_twilio.messages] == [result.message_id]
    assert fake_twilio.request_count == 4


@pytest.mark.parametrize(
    ("exc", "permanent", "code"),
    [
        (TwilioRestException(400, "/x", f"The 'To' number {TO} is invalid", 21211), True, "21211"),
        (TwilioRestException(404, "/x", "not found", 20404), True, "20404"),
        (TwilioRestException(401, "/x", "Authenticate", None), False, "401"),
        (TwilioRestException(429, "/x", "Too many", 20429), False, "20429"),
        (TwilioRestException(502, "/x", "Bad gateway", None), False, "unknown:502"),
        (TwilioServiceException("about:blank", "Down", 503, 20503), False, "20503"),
        (TwilioServiceException("about:blank", "Bad", 400, 21610), True, "21610"),
        (TwilioException(f"could not send to {TO}"), False, "no_answer"),
        (
            requests.ConnectionError(MaxRetryError(None, "/x", NewConnectionError(None, "no"))),
            False,
            "network",
        ),
        (requests.ConnectTimeout("slow to connect"), False, "network"),
        (requests.ConnectionError("Connection aborted."), False, "no_answer"),
        (requests.ReadTimeout("slow"), False, "no_answer"),
        (json.JSONDecodeError("Expecting value", "<html>", 0), False, "bad_response"),
    ],
)
def test_classification(exc, permanent, code):
    error = classify_error(exc)
    unknown = code in ("no_answer", "bad_response") or code.startswith("unknown:")
    assert (error.permanent, error.code) == (permanent, code.removeprefix("unknown:"))
    # Only a failure known to come before the request was written is safe to repeat.
    assert error.unknown == unknown
    assert TO not in str(error)


@pytest.mark.parametrize("code", sorted(RECIPIENT_ERROR_CODES))
def test_every_recipient_error_is_permanent(code):
    error = classify_error(TwilioRestException(400, "/x", "refused", code))
    assert (error.permanent, error.code) == (True, str(code))
    assert "recipient" in str(error)


# Configuration


@pytest.mark.parametrize(
    "overrides",
    [
        {"messaging_service_sid": None, "from_number": None},
        {"messaging_service_sid": MESSAGING_SERVICE_SID, "from_number": FROM_NUMBER},
        {"messaging_service_sid": "MG-not-a-sid"},
        {"campaign_messaging_service_sid": "MG-not-a-sid"},
        {"from_number": " ", "messaging_service_sid": None},
        {"account_sid": "SK" + "0" * 32},
        {"auth_token": ""},
        {"timeout": 0},
    ],
)
def test_the_constructor_refuses_bad_settings(fake_twilio: FakeTwilio, overrides):
    with pytest.raises(ValueError) as info:
        make_sender(fake_twilio, **overrides)
    assert fake_twilio.auth_token not in str(info.value)


def test_the_sender_gives_a_timeout_to_a_client_without_one(fake_twilio: FakeTwilio):
    http = RedirectingHttpClient(fake_twilio.base_url)
    assert http.timeout is None
    TwilioSender(
        account_sid=fake_twilio.account_sid,
        auth_token=fake_twilio.auth_token,
        messaging_service_sid=MESSAGING_SERVICE_SID,
        from_number=None,
        status_callback=None,
        http_client=http,
        timeout=3,
    )
    assert http.timeout == 3


def test_the_redirecting_client_rewrites_scheme_and_host_only():
    http = RedirectingHttpClient("https://edge.example.com/prefix/")
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?PageSize=1"
    rewritten = "https://edge.example.com/prefix/2010-04-01/Accounts/AC1/Messages.json?PageSize=1"
    assert http.rewrite(url) == rewritten
    assert RedirectingHttpClient("http://[::1]:8080").rewrite(url).startswith("http://[::1]:8080/")


@pytest.mark.parametrize(
    "base_url", ["http://api.example.com", "ftp://127.0.0.1", "/relative", "127.0.0.1:80"]
)
def test_the_redirecting_client_refuses_unsafe_base_urls(base_url):
    # Plain http would carry the auth token in the clear off the machine.
    with pytest.raises(ValueError):
        RedirectingHttpClient(base_url)
