"""`smsreg sms simulate`: Twilio's webhooks, signed as Twilio signs them, posted to a
running service, so that STOP replies and delivery reports can be tried without Twilio.

The signature is made with SMSREG_TWILIO_AUTH_TOKEN over the URL the service will check:
SMSREG_PUBLIC_BASE_URL plus the path when it is set, else the --url given.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import requests
import typer
from twilio.request_validator import RequestValidator

from app.core import cli_support
from app.core.config import Settings

sms_cli = typer.Typer(help="SMS tools: simulate Twilio's webhooks.", no_args_is_help=True)
simulate_cli = typer.Typer(
    help="Post a signed Twilio webhook to a running service.", no_args_is_help=True
)
sms_cli.add_typer(simulate_cli, name="simulate")

Url = Annotated[str | None, typer.Option(help="the service's base URL; default http://HOST:PORT")]


def _post(settings: Settings, base: str | None, path: str, form: dict[str, str]) -> None:
    token = settings.twilio_auth_token
    if token is None:
        cli_support.refuse("SMSREG_TWILIO_AUTH_TOKEN is needed to sign a webhook")
    local = (base or f"http://{settings.host}:{settings.port}").rstrip("/")
    signed = (settings.public_base_url or local).rstrip("/") + path
    signature = RequestValidator(token.get_secret_value()).compute_signature(signed, form)
    try:
        answer = requests.post(
            local + path,
            data=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
            timeout=10,
        )
    except requests.RequestException as exc:
        typer.secho(f"no answer from {local}: {type(exc).__name__}", err=True, fg="red")
        raise typer.Exit(1) from None
    typer.echo(f"{answer.status_code} {answer.reason}")
    if answer.status_code >= 300:
        raise typer.Exit(1)


@simulate_cli.command("inbound")
def inbound(
    from_: Annotated[str, typer.Option("--from", help="the sender's number, E.164")],
    body: Annotated[str, typer.Option(help="the message text, e.g. STOP")],
    url: Url = None,
) -> None:
    """An SMS a person sent to the service's number (a STOP word opts them out)."""
    settings = cli_support.load_settings()
    form = {"MessageSid": "SM" + "0" * 32, "From": from_, "To": "+10000000000", "Body": body}
    _post(settings, url, "/v1/sms/twilio/inbound", form)


@simulate_cli.command("status")
def status(
    sid: Annotated[str, typer.Option(help="the carrier's message id (SM...)")],
    state: Annotated[
        str, typer.Option(help="queued, sent, delivered, undelivered or failed")
    ] = "delivered",
    error_code: Annotated[str | None, typer.Option(help="Twilio's error code")] = None,
    to: Annotated[
        str | None,
        typer.Option(
            help="the recipient's number, E.164, as Twilio names it (with --error-code "
            "21610 a registered number's opt-in is withdrawn)"
        ),
    ] = None,
    url: Url = None,
) -> None:
    """A delivery report for a message the service sent."""
    settings = cli_support.load_settings()
    form = {"MessageSid": sid, "MessageStatus": state}
    if error_code:
        form["ErrorCode"] = error_code
    if to:
        form["To"] = to
    _post(settings, url, "/v1/sms/twilio/status", form)
