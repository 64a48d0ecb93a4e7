"""The development sender writes each message as a JSON line."""

from __future__ import annotations

import json
import re

from app.sms.console import ConsoleSender


def test_console_sender_appends_json_lines(tmp_path, capsys):
    outbox = tmp_path / "sub" / "outbox.jsonl"
    sender = ConsoleSender(outbox=outbox, echo=True)
    sender.send(to="+819012345678", body="first")
    sender.send(to="+819012345678", body="second")
    lines = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert [line["body"] for line in lines] == ["first", "second"]
    assert {"to", "body", "time", "id"} <= lines[0].keys()
    # Twilio-shaped ids, distinct, shown with each message: what a simulated delivery
    # report (smsreg sms simulate status --sid) names.
    assert all(re.fullmatch(r"SM[0-9a-f]{32}", line["id"]) for line in lines)
    assert lines[0]["id"] != lines[1]["id"]
    printed = capsys.readouterr().out
    assert "second" in printed and lines[1]["id"] in printed
