"""Permission dependencies of the coupon routes, named for what they allow."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

# The API-key scheme of app.staff.auth, for this area's scope (STYLE: one alias per
# permission, kept in the area's auth.py).
from app.staff.auth import Caller, _ApiKey
from app.staff.scopes import Scope

CouponsWrite = Annotated[Caller, Depends(_ApiKey(Scope.COUPONS_WRITE))]
