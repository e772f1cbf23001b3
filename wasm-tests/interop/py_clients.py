"""Drives two Python L402/macaroon libraries nobody on this project wrote against our edges:
PyPI l402-requests==0.9.0 (its auto-paying client, with a wallet adapter that pays through
LNbits) and pymacaroons==0.13.0 (deserialize the challenge's macaroon, verify it with the root
key, attenuate it and send the result). Prints one `RESULT {json}` line per case;
wasm-tests/tests/interop.rs asserts and tabulates.

env: EDGES (JSON [{name, url}]), PAY_EDGES (edges selling the Payment scheme only: l402-requests'
Payment path), LNBITS_URL, LNBITS_ADMIN_KEY, HELPER_BIN (wasm-tests' interop_helper: prints a
macaroon's root key)
"""

import hashlib
import json
import os
import re
import subprocess
import time
import traceback
from urllib.parse import urlparse

import httpx
from l402_requests import BudgetController, CredentialCache, L402Client, WalletBase
from l402_requests.challenge import find_l402_challenge
from pymacaroons import Macaroon, Verifier


def result(client, edge, case, ok, detail):
    print("RESULT " + json.dumps(
        {"client": client, "edge": edge, "case": case, "ok": ok, "detail": str(detail)}),
        flush=True)


def run(client, edge, case, f):
    try:
        result(client, edge, case, True, f())
    except Exception:  # noqa: BLE001 - every failure is a red cell with its traceback
        result(client, edge, case, False, traceback.format_exc())


class LnbitsWallet(WalletBase):
    """Pays through an LNbits wallet's admin key; LNbits returns the preimage."""

    def __init__(self):
        self.payments = 0

    async def pay_invoice(self, bolt11: str) -> str:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{os.environ['LNBITS_URL']}/api/v1/payments",
                             headers={"X-Api-Key": os.environ["LNBITS_ADMIN_KEY"]},
                             json={"out": True, "bolt11": bolt11}, timeout=30)
        body = r.json()
        if "preimage" not in body:
            raise RuntimeError(f"LNbits did not pay: {body}")
        self.payments += 1
        return body["preimage"]


def l402_requests_cases(edge):
    name = "l402-requests 0.9.0"
    url = edge["url"] + "/weather"
    host, path = urlparse(url).hostname, urlparse(url).path
    wallet = LnbitsWallet()
    client = L402Client(wallet=wallet, budget=BudgetController(max_sats_per_request=100),
                        credential_cache=CredentialCache())
    # L402Client keeps `credential_cache or CredentialCache()`: an empty cache is falsy, so
    # the one passed in is replaced. Read the client's own (test-side only; nothing patched).
    cache = client._cache

    def auto_pay():
        r = client.get(url)
        assert r.status_code == 200, (r.status_code, r.text)
        assert wallet.payments == 1, wallet.payments
        return "402 -> the wallet paid -> 200"

    def cached():
        r = client.get(url)
        assert r.status_code == 200, (r.status_code, r.text)
        assert wallet.payments == 1, "paid again instead of reusing the cached token"
        return "200 from the cached credential, no second payment"

    def expired():
        cred = cache.get(host, path)
        m = Macaroon.deserialize(cred.macaroon)
        m.add_first_party_caveat(f"weather_valid_until={int(time.time()) - 60}")
        cache.put(host, path, m.serialize(), cred.preimage)
        r = client.get(url)
        assert r.status_code == 200, (r.status_code, r.text)
        assert wallet.payments == 2, wallet.payments
        return "expired token -> 402 -> paid the fresh challenge -> 200"

    run(name, edge["name"], "auto-pay: 402 -> wallet pays -> 200", auto_pay)
    run(name, edge["name"], "cached credential reused", cached)
    run(name, edge["name"], "expired credential -> fresh challenge paid -> 200", expired)


def pay(invoice):
    r = httpx.post(f"{os.environ['LNBITS_URL']}/api/v1/payments",
                   headers={"X-Api-Key": os.environ["LNBITS_ADMIN_KEY"]},
                   json={"out": True, "bolt11": invoice}, timeout=30)
    return r.json()["preimage"]


def pymacaroons_cases(edge):
    name = "pymacaroons 0.13.0"
    url = edge["url"] + "/weather"
    r = httpx.get(url)
    challenge = find_l402_challenge(r.headers)
    b64 = challenge.macaroon
    root = bytes.fromhex(
        subprocess.check_output([os.environ["HELPER_BIN"], "root-key", b64]).decode().strip())

    def layout():
        m = Macaroon.deserialize(b64)
        ident = m.identifier_bytes
        assert len(ident) == 66 and ident[:2] == b"\x00\x00", ident.hex()
        caveats = [c.caveat_id.decode() if isinstance(c.caveat_id, bytes) else c.caveat_id
                   for c in m.first_party_caveats()]
        assert caveats[:2] == ["services=weather:0", "weather_capabilities=read"], caveats
        assert re.fullmatch(r"weather_valid_until=\d+", caveats[2]), caveats
        return "; ".join(caveats)

    def verify():
        m = Macaroon.deserialize(b64)
        v = Verifier()
        v.satisfy_exact("services=weather:0")
        v.satisfy_exact("weather_capabilities=read")
        v.satisfy_general(lambda c: c.startswith("weather_valid_until=")
                          and int(c.split("=", 1)[1]) > time.time())
        assert v.verify(m, root)
        try:
            Verifier().verify(m, hashlib.sha256(root).digest())
        except Exception:  # noqa: BLE001 - any refusal is right
            return "verified with the derived root key; a wrong key is refused"
        raise AssertionError("a wrong root key verified")

    def attenuate_and_use():
        preimage = pay(challenge.invoice)
        m = Macaroon.deserialize(b64)
        m.add_first_party_caveat(f"weather_valid_until={int(time.time()) + 600}")
        # pymacaroons serializes URL-safe base64 without padding.
        token = m.serialize()
        assert "=" not in token
        r = httpx.get(url, headers={"Authorization": f"L402 {token}:{preimage}"})
        assert r.status_code == 200, (r.status_code, r.text)
        return "attenuated, URL-safe unpadded base64 -> 200"

    run(name, edge["name"], "deserialize + identifier layout", layout)
    run(name, edge["name"], "verify with the derived root key", verify)
    run(name, edge["name"], "attenuate, serialize, send -> 200", attenuate_and_use)


def l402_requests_payment_cases(edge):
    """The Payment scheme (lightning charge) against an edge that sells nothing else."""
    name = "l402-requests 0.9.0"
    url = edge["url"] + "/weather"
    wallet = LnbitsWallet()
    client = L402Client(wallet=wallet, budget=BudgetController(max_sats_per_request=100))

    def pays_a_charge():
        r = client.get(url)
        assert r.status_code == 200, (r.status_code, r.text)
        assert wallet.payments == 1, wallet.payments
        receipt = r.payment_receipt
        assert receipt is not None, r.headers
        return f"402 Payment -> paid -> 200, receipt {receipt}"

    def pays_again():
        # A charge serves one request: the next one is a new purchase.
        r = client.get(url)
        assert r.status_code == 200, (r.status_code, r.text)
        assert wallet.payments == 2, wallet.payments
        return "the next request bought a second charge"

    run(name, edge["name"], "Payment scheme: pays a lightning charge -> 200 + receipt", pays_a_charge)
    run(name, edge["name"], "Payment scheme: one charge per request", pays_again)


for edge in json.loads(os.environ["EDGES"]):
    l402_requests_cases(edge)
    pymacaroons_cases(edge)
for edge in json.loads(os.environ.get("PAY_EDGES", "[]")):
    l402_requests_payment_cases(edge)
