// The plain-JavaScript peer of the L402 Worker (issue 18): the same checks with npm `macaroon`
// 3.0.4 and WebCrypto, answering 200 itself. scripts/bench-worker runs it beside the Rust
// Worker in one workerd process, so every run compares Rust/Wasm with what JavaScript costs.
//
// Checks: `Authorization: L402 <macaroon>:<preimage>`, the V2 macaroon decoded, the identifier
// (version 0, payment hash, token id), sha256(preimage) = payment hash, the root key
// HMAC-SHA256(secret[key id], "l402-edge/root-key/v1" || token id), the signature chain, and
// the caveats `services`, `<svc>_capabilities`, `<svc>_valid_until`. A cache of verified
// credentials (the Rust Worker's default) is the `CACHE` binding: "1" on, anything else off.
import macaroon from "macaroon";

const LABEL = new TextEncoder().encode("l402-edge/root-key/v1");
let secrets; // key id -> CryptoKey (HMAC), from L402_KEYS
const cache = new Map(); // credential -> expiry (unix seconds)

function hex(s) {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}

async function keyring(text) {
  const map = new Map();
  for (const entry of text.split(",")) {
    const [id, secret] = entry.trim().split(":");
    const key = await crypto.subtle.importKey("raw", hex(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    map.set(Number(id), key);
  }
  return map;
}

function deny(status, error) {
  return new Response(JSON.stringify({ error }), { status, headers: { "content-type": "application/json" } });
}

async function verify(value, now) {
  const m = /^L402 ([^:]+):([0-9a-fA-F]{64})$/.exec(value || "");
  if (!m) return "missing_credential";
  const mac = macaroon.importMacaroon(macaroon.base64ToBytes(m[1]));
  const id = mac.identifier;
  if (id.length !== 66 || id[0] !== 0 || id[1] !== 0) return "malformed_credential";
  const preimage = hex(m[2]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", preimage));
  for (let i = 0; i < 32; i++) if (digest[i] !== id[2 + i]) return "wrong_preimage";
  const tokenId = id.subarray(34);
  const keyId = (tokenId[0] << 24) | (tokenId[1] << 16) | (tokenId[2] << 8) | tokenId[3];
  const secret = secrets.get(keyId >>> 0);
  if (!secret) return "unknown_key";
  const msg = new Uint8Array(LABEL.length + 32);
  msg.set(LABEL);
  msg.set(tokenId, LABEL.length);
  const root = new Uint8Array(await crypto.subtle.sign("HMAC", secret, msg));
  let expires = Infinity;
  try {
    mac.verify(root, (cond) => {
      const [k, v] = [cond.slice(0, cond.indexOf("=")), cond.slice(cond.indexOf("=") + 1)];
      if (k === "services") return v.split(",").some((s) => s.split(":")[0] === "weather") ? null : "service";
      if (k === "weather_capabilities") return v.split(",").includes("read") ? null : "capability";
      if (k === "weather_valid_until") {
        expires = Math.min(expires, Number(v));
        return Number(v) > now ? null : "expired";
      }
      return "unsupported caveat";
    });
  } catch (e) {
    return "bad_signature";
  }
  return { expires };
}

export default {
  async fetch(request, env) {
    secrets ??= await keyring(env.L402_KEYS);
    const value = request.headers.get("authorization");
    const now = Date.now() / 1000;
    if (env.CACHE === "1" && cache.get(value) > now) return new Response("ok");
    const v = await verify(value, now);
    if (typeof v === "string") return deny(v === "missing_credential" ? 402 : 401, v);
    if (env.CACHE === "1") {
      if (cache.size >= 1024) cache.delete(cache.keys().next().value);
      cache.set(value, v.expires);
    }
    return new Response("ok");
  },
};
