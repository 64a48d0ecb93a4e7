"""The ``{staff_id}`` path segment of /v1/staff, which never captures a fixed one.

``/v1/staff/me/totp`` takes GET and POST; ``/v1/staff/{staff_id}/totp`` takes DELETE.
A DELETE of ``/v1/staff/me/totp`` matched the second with ``staff_id="me"`` and was
answered ``422 staff_id`` for an id the caller never sent, rather than ``405`` naming
what the path takes (app.core.http.segment_beside).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from app.core.http import segment_beside

# The fixed segments right under /v1/staff/ (tests/staff/test_paths.py holds this to
# the routes).
FIXED = ("enrolment", "grants", "invitations", "me", "sessions")

# The segment, for a route's path: ``f"/{STAFF_ID}/role"``.
STAFF_ID = segment_beside("staff_id", FIXED)
StaffId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^stf_[A-Za-z0-9_\-]+$")]
