// Drives a Payment-scheme client nobody on this project wrote against edges that sell over
// the IETF "Payment" scheme only: npm @getalby/lightning-tools@9.0.1 `fetch402` (it picks L402,
// Payment or x402 from the 402), paying through LNbits. Prints one `RESULT {json}` line per
// case; wasm-tests/tests/interop.rs asserts and tabulates.
//
// env: INTEROP_NODE_MODULES, EDGES (JSON [{name, url}]), LNBITS_URL, LNBITS_ADMIN_KEY
import { createRequire } from "node:module";

const require = createRequire(process.env.INTEROP_NODE_MODULES + "/");
const { fetch402 } = require("@getalby/lightning-tools/402");
const CLIENT = "@getalby/lightning-tools 9.0.1";

function result(edge, kase, ok, detail) {
  console.log("RESULT " + JSON.stringify({ client: CLIENT, edge, case: kase, ok, detail: String(detail) }));
}

// The wallet shape fetch402 calls (NWC's `payInvoice({invoice})` → `{preimage}`), paying
// from the LNbits payer wallet.
const wallet = {
  paid: 0,
  async payInvoice({ invoice }) {
    const r = await fetch(`${process.env.LNBITS_URL}/api/v1/payments`, {
      method: "POST",
      headers: { "X-Api-Key": process.env.LNBITS_ADMIN_KEY, "Content-Type": "application/json" },
      body: JSON.stringify({ out: true, bolt11: invoice }),
    });
    const body = await r.json();
    if (!body.preimage) throw new Error(`LNbits did not pay: ${JSON.stringify(body)}`);
    this.paid += 1;
    return { preimage: body.preimage };
  },
};

for (const edge of JSON.parse(process.env.EDGES)) {
  const url = edge.url + "/weather";
  const run = async (kase, f) => {
    try {
      result(edge.name, kase, true, await f());
    } catch (e) {
      result(edge.name, kase, false, e.stack || e);
    }
  };
  let credential;
  await run("fetch402 pays a Payment challenge (lightning charge) and gets 200", async () => {
    const plain = await fetch(url);
    const offered = plain.headers.get("www-authenticate") || "";
    if (plain.status !== 402 || !offered.startsWith("Payment ")) {
      throw new Error(`expected a 402 offering Payment only, got ${plain.status}: ${offered}`);
    }
    const before = wallet.paid;
    const resp = await fetch402(url, {}, { wallet });
    if (resp.status !== 200) throw new Error(`status ${resp.status}: ${await resp.text()}`);
    if (wallet.paid !== before + 1) throw new Error(`paid ${wallet.paid - before} times`);
    const receipt = resp.headers.get("payment-receipt");
    if (!receipt) throw new Error("no Payment-Receipt");
    const decoded = JSON.parse(Buffer.from(receipt, "base64url").toString("utf8"));
    if (decoded.status !== "success" || decoded.method !== "lightning") {
      throw new Error(`receipt ${JSON.stringify(decoded)}`);
    }
    credential = resp.payment?.credentials?.value
      ?? resp.payment?.credentials?.[0]?.value
      ?? null;
    return `200, one payment, receipt reference ${decoded.reference.slice(0, 12)}…`;
  });
  await run("its credential replayed: 402 invalid-challenge, not paid again", async () => {
    if (!credential) {
      // Rebuild what fetch402 sent from a fresh purchase's request if the API hid it.
      throw new Error("fetch402 did not expose the credential it sent");
    }
    const r = await fetch(url, { headers: { Authorization: credential } });
    const body = await r.json();
    if (r.status !== 402 || body.type !== "https://paymentauth.org/problems/invalid-challenge") {
      throw new Error(`status ${r.status}: ${JSON.stringify(body)}`);
    }
    return `402 ${body.error}`;
  });
}
