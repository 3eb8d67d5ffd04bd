"""`python -m gslb.healthcheck [URL]`: the container image's HEALTHCHECK.

GETs URL (default: `$GSLB_HEALTHCHECK_URL`, else the admin API's /healthz on
127.0.0.1:8053) and exits 0 on a 2xx answer, 1 otherwise, with one line on stderr
saying why. Only the standard library: slim images have no curl.

    python -m gslb.healthcheck                               # gslb serve
    python -m gslb.healthcheck http://127.0.0.1:8081/health  # a gslb proxy's admin port
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

DEFAULT_URL = "http://127.0.0.1:8053/healthz"
TIMEOUT = 3.0


def target(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    if argv:
        return argv[0]
    return environ.get("GSLB_HEALTHCHECK_URL", "").strip() or DEFAULT_URL


def check(url: str, timeout: float = TIMEOUT) -> str | None:
    """None when `url` answers 2xx, else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return f"cannot reach {url}: {getattr(exc, 'reason', exc)}"
    return None if 200 <= status < 300 else f"{url} answered {status}"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or args[:1] in (["-h"], ["--help"]):
        print(__doc__, file=sys.stderr)
        return 2
    problem = check(target(args, os.environ if environ is None else environ))
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
