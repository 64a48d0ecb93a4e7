"""The development sender writes each message as a JSON line."""

from __future__ import annotations

import json

from app.sms.console import ConsoleSender


def test_console_sender_appends_json_lines(tmp_path, capsys):
    outbox = tmp_path / "sub" / "outbox.jsonl"
    sender = ConsoleSender(outbox=outbox, echo=True)
    sender.send(to="+819012345678", body="first")
    sender.send(to="+819012345678", body="second")
    lines = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert [line["body"] for line in lines] == ["first", "second"]
    assert {"to", "body", "time"} <= lines[0].keys()
    assert "second" in capsys.readouterr().out
