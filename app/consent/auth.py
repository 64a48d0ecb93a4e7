"""Permission dependencies of the consent and delivery routes, named for what they allow."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

# The API-key scheme of app.staff.auth, for this area's scopes (STYLE: one alias per
# permission, kept in the area's auth.py).
from app.staff.auth import Caller, _ApiKey
from app.staff.scopes import Scope

ConsentsWrite = Annotated[Caller, Depends(_ApiKey(Scope.CONSENTS_WRITE))]
DeliveriesWrite = Annotated[Caller, Depends(_ApiKey(Scope.DELIVERIES_WRITE))]
