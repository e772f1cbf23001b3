"""Checks l402-edge's signed context header at the origin (docs/ENVOY.md, docs/CLOUDFLARE.md).

    python3 verify_context.py <hex key> <method> <path> <x-l402-context value>

Prints the verified context as JSON and exits 0, or prints why and exits 1. In an app, call
`verify(...)` from a middleware before serving a paid route, with the request's method and
its path as your framework routes it (without the query).
"""
import json
import sys

import jwt  # PyJWT


def verify(key_hex: str, header: str, method: str, path: str, leeway: int = 5) -> dict:
    """The context's claims if the edge signed it for this request; raises otherwise."""
    claims = jwt.decode(
        header,
        bytes.fromhex(key_hex),
        algorithms=["HS256"],  # never trust the token's own "alg"
        options={"require": ["exp", "iat"]},
        leeway=leeway,
    )
    if claims.get("htm") != method or claims.get("htp") != path:
        raise jwt.InvalidTokenError("signed for another request")
    return claims


if __name__ == "__main__":
    key, method, path, header = sys.argv[1:5]
    try:
        print(json.dumps(verify(key, header, method, path), sort_keys=True))
    except jwt.InvalidTokenError as e:
        print(f"refused: {e}")
        sys.exit(1)
