"""Staff roles and which of them may do what.

Each permission is written once, here, as the set of roles that hold it; the routes
name them through the dependency aliases in app.staff.auth.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    PRIVACY_OFFICER = "privacy_officer"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    ADMIN = "admin"


ALL_ROLES = frozenset(Role)

# Search subscribers and see them masked. Admin and auditor never see a number, not
# even masked: least privilege, since a masked view still shows that a number is held
# and its last four digits.
SUBSCRIBER_READ = frozenset({Role.OPERATOR, Role.PRIVACY_OFFICER})
# See a full number, with a stated reason, logged: the designated manager only.
PHONE_REVEAL = frozenset({Role.PRIVACY_OFFICER})
# Read and export the access log: auditors, and the privacy officer, who answers for
# every view of a number and reviews the log.
ACCESS_LOG_READ = frozenset({Role.AUDITOR, Role.PRIVACY_OFFICER})
# Create staff, change roles, disable accounts, end their sessions.
STAFF_ADMIN = frozenset({Role.ADMIN})
# Read the staff list and each account's permission history: admins, and auditors, who
# review who holds which role.
STAFF_READ = frozenset({Role.ADMIN, Role.AUDITOR})
# See the pumping guard's blocked number prefixes (the fraud picture: no subscriber in it).
PUMPING_READ = frozenset({Role.ADMIN, Role.OPERATOR, Role.AUDITOR})
# Lift a block before its cool-off ends.
PUMPING_ADMIN = frozenset({Role.ADMIN})
# Ask for a disclosure to a third party: support staff and the privacy officer.
DISCLOSURE_REQUEST = frozenset({Role.OPERATOR, Role.PRIVACY_OFFICER})
# Approve, reject and release one: the privacy officer (never their own request).
DISCLOSURE_DECIDE = frozenset({Role.PRIVACY_OFFICER})
# Read requests (subject ids, never numbers): those who ask, decide and audit.
DISCLOSURE_READ = frozenset({Role.OPERATOR, Role.PRIVACY_OFFICER, Role.AUDITOR})
# Export and verify the ledger, sign a checkpoint: auditors and the privacy officer, who
# answers to the regulator.
LEDGER_AUDIT = frozenset({Role.AUDITOR, Role.PRIVACY_OFFICER})
# Export the ledger: those who audit it, and the admin (the owner's disclosure-log export;
# the ledger holds subject ids, never a number).
LEDGER_EXPORT = frozenset({Role.AUDITOR, Role.PRIVACY_OFFICER, Role.ADMIN})
# The roles whose grant (a new account with it, or a promotion to it) is a proposal that
# a different admin confirms: the one who sees numbers, and the one who makes staff.
PRIVILEGED = frozenset({Role.PRIVACY_OFFICER, Role.ADMIN})
# Handle a subject's own requests about third-party provision (stop, consent, records).
SUBJECT_REQUESTS = frozenset({Role.OPERATOR, Role.PRIVACY_OFFICER})
# The register of subject requests (due dates, what was done): those who handle them,
# and auditors, who check they were answered in time.
SUBJECT_REQUESTS_READ = frozenset({Role.OPERATOR, Role.PRIVACY_OFFICER, Role.AUDITOR})
