"""What a client is told of an SMS: one of the documented states, whatever the carrier says."""

from __future__ import annotations

from typing import get_args

import pytest

from app.sms.outbox.messages import DeliveryState, delivery_state

STATES = set(get_args(DeliveryState))


@pytest.mark.parametrize(
    ("status", "carrier", "state"),
    [
        ("pending", None, "queued"),
        ("sending", None, "sending"),
        ("unknown", None, "unknown"),
        ("cancelled", None, "cancelled"),
        ("expired", None, "expired"),
        ("sent", "accepted", "sent"),  # a Messaging Service's first answer
        ("sent", "scheduled", "sent"),
        ("sent", "queued", "sent"),
        ("sent", "delivered", "delivered"),
        ("sent", "read", "delivered"),
        ("sent", "undelivered", "undelivered"),
        ("sent", "canceled", "failed"),
        ("sent", "a-word-twilio-adds-later", "sent"),
        ("a-status-nobody-wrote", None, "unknown"),
    ],
)
def test_every_state_a_client_sees_is_a_documented_one(status, carrier, state):
    assert delivery_state(status, carrier) == state
    assert state in STATES
