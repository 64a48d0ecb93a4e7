"""The image's health check: is this replica ready for traffic (GET /readyz)?

Standard library only, so it costs no import of the app. It reads the same SMSREG_HOST
and SMSREG_PORT the service binds to, so a changed port never leaves a stale check.
"""

import os
import sys
import urllib.request

host = os.environ.get("SMSREG_HOST") or "127.0.0.1"
if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104 (bound to every address: ask loopback)
    host = "127.0.0.1"
if ":" in host and not host.startswith("["):
    host = f"[{host}]"
port = os.environ.get("SMSREG_PORT") or "8000"
try:
    # /readyz answers within about 5 s even when the database hangs (docs/operations.md).
    with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=6) as response:  # noqa: S310
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # any failure means not healthy; say which for `docker inspect`
    print(f"not ready: {exc}", file=sys.stderr)
    sys.exit(1)
