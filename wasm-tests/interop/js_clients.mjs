// Drives two JavaScript L402/macaroon libraries nobody on this project wrote against our
// edges: npm lsat-js@2.0.6 (parse the challenge, pay, send its LSAT token, attenuate) and
// npm macaroon@3.0.4 (deserialize the challenge's macaroon and verify it with the root key).
// Prints one `RESULT {json}` line per case; wasm-tests/tests/interop.rs asserts and tabulates.
//
// env: INTEROP_NODE_MODULES, EDGES (JSON [{name, url}]), LNBITS_URL, LNBITS_ADMIN_KEY,
//      HELPER_BIN (wasm-tests' interop_helper: a macaroon's root key, an expired token)
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";

const require = createRequire(process.env.INTEROP_NODE_MODULES + "/");
const { Lsat, Caveat } = require("lsat-js");
const macaroon = require("macaroon");

function result(client, edge, kase, ok, detail) {
  console.log("RESULT " + JSON.stringify({ client, edge, case: kase, ok, detail: String(detail) }));
}

async function pay(invoice) {
  const r = await fetch(`${process.env.LNBITS_URL}/api/v1/payments`, {
    method: "POST",
    headers: { "X-Api-Key": process.env.LNBITS_ADMIN_KEY, "Content-Type": "application/json" },
    body: JSON.stringify({ out: true, bolt11: invoice }),
  });
  const body = await r.json();
  if (!body.preimage) throw new Error(`LNbits did not pay: ${JSON.stringify(body)}`);
  return body.preimage;
}

async function challenge(url) {
  const r = await fetch(url);
  if (r.status !== 402) throw new Error(`expected 402, got ${r.status}`);
  return r.headers.get("www-authenticate");
}

async function get(url, authorization) {
  const r = await fetch(url, { headers: { Authorization: authorization } });
  return { status: r.status, header: r.headers.get("www-authenticate"), body: await r.text() };
}

async function lsatJs(edge) {
  const url = edge.url + "/weather";
  const run = async (kase, f) => {
    try {
      result("lsat-js 2.0.6", edge.name, kase, true, await f());
    } catch (e) {
      result("lsat-js 2.0.6", edge.name, kase, false, e.stack || e);
    }
  };
  let paid;
  await run("parse challenge (Lsat.fromHeader)", async () => {
    const lsat = Lsat.fromHeader(await challenge(url));
    const invoiceHash = lsat.paymentHash;
    if (!/^[0-9a-f]{64}$/.test(invoiceHash)) throw new Error("no payment hash");
    // The identifier (decoded by lsat-js) carries the invoice's payment hash.
    const { Identifier } = require("lsat-js");
    const id = Identifier.fromString(lsat.id);
    if (id.paymentHash.toString("hex") !== invoiceHash) throw new Error("identifier hash != invoice hash");
    return `payment hash ${invoiceHash.slice(0, 12)}…, token id ${id.tokenId.toString("hex").slice(0, 12)}…`;
  });
  await run("pay, send `LSAT mac:preimage` -> 200", async () => {
    const lsat = Lsat.fromHeader(await challenge(url));
    lsat.setPreimage(await pay(lsat.invoice));
    const r = await get(url, lsat.toToken());
    if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body}`);
    paid = lsat;
    return `200 with ${lsat.toToken().slice(0, 12)}…`;
  });
  await run("expired token -> 402, fresh challenge paid -> 200", async () => {
    // A token the service minted an hour ago with a one-minute lifetime, for a payment the
    // client made (the test helper mints it with the test keyring).
    const preimage = "5a".repeat(32);
    const mac = execFileSync(process.env.HELPER_BIN, ["mint-expired", preimage]).toString().trim();
    const lsat = Lsat.fromToken(`LSAT ${mac}:${preimage}`);
    const r = await get(url, lsat.toToken());
    if (r.status !== 402) throw new Error(`expected 402, got ${r.status}`);
    const reason = JSON.parse(r.body).error;
    if (reason !== "token_expired") throw new Error(`reason ${reason}`);
    const fresh = Lsat.fromHeader(r.header);
    fresh.setPreimage(await pay(fresh.invoice));
    const again = await get(url, fresh.toToken());
    if (again.status !== 200) throw new Error(`fresh token: status ${again.status}`);
    return "402 token_expired -> paid the fresh challenge -> 200";
  });
  await run("wrong preimage -> 402 with a parseable challenge", async () => {
    const token = paid.toToken().replace(/:[0-9a-f]{64}$/, ":" + "00".repeat(32));
    const r = await get(url, token);
    if (r.status !== 402) throw new Error(`expected 402, got ${r.status}`);
    Lsat.fromHeader(r.header);
    const reason = JSON.parse(r.body).error;
    if (reason !== "wrong_preimage") throw new Error(`reason ${reason}`);
    return `402 ${reason}, challenge parsed`;
  });
}

async function macaroonJs(edge) {
  const url = edge.url + "/weather";
  const run = async (kase, f) => {
    try {
      result("macaroon 3.0.4 (js)", edge.name, kase, true, await f());
    } catch (e) {
      result("macaroon 3.0.4 (js)", edge.name, kase, false, e.stack || e);
    }
  };
  const header = await challenge(url);
  const b64 = /L402 macaroon="([^"]+)"/.exec(header)[1];
  const invoiceHash = Lsat.fromHeader(header).paymentHash;
  await run("importMacaroon + identifier layout", async () => {
    const m = macaroon.importMacaroon(b64);
    const id = Buffer.from(m.identifier);
    if (id.length !== 66 || id.readUInt16BE(0) !== 0) throw new Error(`identifier ${id.toString("hex")}`);
    if (id.subarray(2, 34).toString("hex") !== invoiceHash) throw new Error("payment hash");
    const caveats = m.caveats.map((c) => Buffer.from(c.identifier).toString());
    const want = [/^services=weather:0$/, /^weather_capabilities=read$/, /^weather_valid_until=\d+$/];
    if (caveats.length !== 3 || !want.every((re, i) => re.test(caveats[i])))
      throw new Error(`caveats ${JSON.stringify(caveats)}`);
    return caveats.join("; ");
  });
  await run("verify signature with the derived root key", async () => {
    const m = macaroon.importMacaroon(b64);
    const root = Buffer.from(execFileSync(process.env.HELPER_BIN, ["root-key", b64]).toString().trim(), "hex");
    const seen = [];
    m.verify(root, (c) => { seen.push(c); return null; }, []);
    let refused = false;
    try {
      m.verify(createHash("sha256").update(root).digest(), () => null, []);
    } catch {
      refused = true;
    }
    if (!refused) throw new Error("a wrong root key verified");
    return `verified (${seen.length} caveats checked); a wrong key is refused`;
  });
}

const edges = JSON.parse(process.env.EDGES);
for (const edge of edges) {
  await lsatJs(edge);
  await macaroonJs(edge);
}
