"""The retention schedule in one place: every table that holds personal data, how long it
is kept by default, the legal floor below which it may not be cut, and why.

The purge steps that apply it live beside each area's tables (``retention.py``); this is
the table of record (docs/data-subjects.md prints it), and a test holds that every table
of the schema is either here or in :data:`NO_PERSONAL_DATA`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Retention:
    """How long one table's rows are kept."""

    table: str
    holds: str
    default: str
    floor: str
    setting: str | None = None


_AS_SUBSCRIBER = "as long as the subscriber: erased with it (request or dormancy)"
_NO_FLOOR = "none: kept only as long as the purpose needs (APPI Art. 22)"
_LEDGER_FLOOR = "3 years (APPI Art. 29(2), 30(3); Enforcement Rules Art. 14, 18)"

SCHEDULE: tuple[Retention, ...] = (
    Retention("subscribers", "encrypted number, blind index", _AS_SUBSCRIBER + "; dormant "
              "after 365 days when SMSREG_DORMANT_ERASURE is on", _NO_FLOOR,
              "dormant_after_days"),
    Retention("subscriber_purposes", "purposes verified for, when", _AS_SUBSCRIBER, _NO_FLOOR),
    Retention("verifications", "encrypted number, blind index, code state",
              "unverified, and approved self-service (/my/), 24 hours; approved 183 days",
              _NO_FLOOR,
              "verification_retention_days"),
    Retention("outbox_messages", "SMS to a number (by verification or subscriber)",
              "with its verification; campaign messages 183 days", _NO_FLOOR,
              "verification_retention_days"),
    Retention("consent_events", "consent history (subscriber id, client address)",
              _AS_SUBSCRIBER, "1 month after the last message sent on it (Act on "
              "Specified Electronic Mail Art. 3(3))"),
    Retention("consents", "current consent per purpose", _AS_SUBSCRIBER, _NO_FLOOR),
    Retention("coupon_redemptions", "redemptions of the number", _AS_SUBSCRIBER, _NO_FLOOR),
    Retention("erased_redemptions", "a number's redemptions per coupon as a subscriber it "
              "no longer has (erased or moved away), under its keyed hash",
              "365 days after the day of the last redemption", _NO_FLOOR,
              "coupon_limit_memory_days"),
    Retention("erased_consent_events", "an erased subscriber's consent history (subscriber "
              "id, client address)", "a month after the last campaign message could be sent",
              "1 month after the last message sent on it (Act on Specified Electronic Mail "
              "Art. 3(3))"),
    Retention("send_windows", "keyed hash of the number, send times", "1 day", _NO_FLOOR),
    Retention("rate_limit_hits", "keyed hashes of numbers, prefixes, addresses", "1 day",
              _NO_FLOOR),
    Retention("idempotency_records", "first answer to a start (masked number)", "24 hours",
              _NO_FLOOR, "idempotency_ttl_hours"),
    Retention("access_log", "staff reads of a subscriber (subscriber id, staff, address)",
              "365 days", "1 year (security record)", "access_log_retention_days"),
    Retention("audit_events", "what was done to which record, by whom (ids only)",
              "a verification's or an SMS's events 183 days; the rest kept; rows name ids, "
              "never a number", _NO_FLOOR, "verification_retention_days"),
    Retention("subject_sessions", "a subject's session (subscriber id)",
              "15 minutes live; deleted with the subscriber", _NO_FLOOR,
              "subject_session_minutes"),
    Retention("subject_requests", "a subject's requests and erasure receipts (subject id)",
              "3 years", "3 years (proof that requests were answered)",
              "subject_request_retention_days"),
    Retention("disclosure_requests", "disclosure requests naming subject ids", "3 years",
              _LEDGER_FLOOR, "ledger_retention_days"),
    Retention("disclosure_consents", "a subject's consents to provide to a recipient",
              _AS_SUBSCRIBER, _NO_FLOOR),
    Retention("disclosure_stops", "a subject's stop of third-party provision", _AS_SUBSCRIBER,
              _NO_FLOOR),
    Retention("ledger_entries", "released disclosures naming subject ids", "3 years",
              _LEDGER_FLOOR, "ledger_retention_days"),
    Retention("ledger_entry_subjects", "which entries name which subject id", "3 years",
              _LEDGER_FLOOR, "ledger_retention_days"),
    Retention("staff_accounts", "staff names and password hashes", "kept (never deleted)",
              "as long as actions by the account are on record"),
    Retention("staff_sessions", "staff login address", "1 day after the session ends",
              _NO_FLOOR),
    Retention("staff_login_attempts", "keyed hashes of address and username", "1 day",
              _NO_FLOOR),
    Retention("staff_permission_history", "who granted which role to whom", "3 years",
              "3 years", "permission_history_retention_days"),
    Retention("staff_role_grants", "role proposals naming staff", "kept with the history",
              "3 years"),
    Retention("staff_invitations", "invitation of a named account, redemption address",
              "kept with the account", _NO_FLOOR),
    Retention("staff_totp", "a staff member's encrypted TOTP secret", "with the account",
              _NO_FLOOR),
    Retention("staff_recovery_codes", "keyed hashes of recovery codes", "with the account",
              _NO_FLOOR),
)  # fmt: skip

# Tables with no personal data: what they hold, in a word, and why it is not personal.
NO_PERSONAL_DATA: dict[str, str] = {
    "api_keys": "service clients (organisations), key hashes",
    "deliveries": "a campaign's texts and tallies; recipients are in outbox_messages",
    "delivery_texts": "a campaign's text per language",
    "ledger_checkpoints": "signed chain heads: hashes only",
    "pumping_blocks": "number ranges of a million numbers: no one's number",
    "shared_count_writers": "a random id per server process and a tally of its writes",
}


def by_table() -> dict[str, Retention]:
    """The schedule by table name."""
    return {entry.table: entry for entry in SCHEDULE}
