"""Reads a 402's WWW-Authenticate values (JSON list, argv[1]) the way each Python-side client
does, and prints one JSON object: client -> {"macaroon", "invoice"} or {"error"}.

- l402-requests 0.9.0: its own challenge selection (`L402Client` calls `_select_challenge` on
  every 402), on a response carrying exactly these header values.
- Aperture's Go client (`client_interceptor.go`, current master; lnget uses it): its regex,
  which Python's `re` reads as RE2 does for this pattern.
"""

import json
import re
import sys

import httpx
from l402_requests.client import _select_challenge

APERTURE_CLIENT_RE = re.compile(
    r'(LSAT|L402) (?:version="[^"]*", )?(?:token|macaroon)="(.*?)", invoice="(.*?)"'
)


def main():
    values = json.loads(sys.argv[1])
    out = {}
    try:
        resp = httpx.Response(402, headers=[("www-authenticate", v) for v in values])
        c = _select_challenge(resp)
        out["l402-requests 0.9.0"] = (
            {"macaroon": c.macaroon, "invoice": c.invoice} if c else {"error": "no challenge"}
        )
    except Exception as e:  # noqa: BLE001 - any failure is the client's answer
        out["l402-requests 0.9.0"] = {"error": repr(e)}
    # The Go client reads the first WWW-Authenticate value only (Header.Get).
    m = APERTURE_CLIENT_RE.search(values[0]) if values else None
    out["Aperture client regex (lnget)"] = (
        {"macaroon": m.group(2), "invoice": m.group(3)} if m else {"error": "no match"}
    )
    print(json.dumps(out))


main()
