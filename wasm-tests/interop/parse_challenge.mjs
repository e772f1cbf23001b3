// Reads a 402's WWW-Authenticate values (JSON list, argv[2]) the way lsat-js does: fetch
// joins repeated values with ", " and lsat-js parses the field with Lsat.fromHeader. Prints
// {"lsat-js 2.0.6": {"macaroon", "invoice"} | {"error"}}.
//
// env: INTEROP_NODE_MODULES
import { createRequire } from "node:module";

const require = createRequire(process.env.INTEROP_NODE_MODULES + "/");
const { Lsat } = require("lsat-js");

const values = JSON.parse(process.argv[2]);
const joined = new Headers(values.map((v) => ["www-authenticate", v])).get("www-authenticate");
let result;
try {
  const lsat = Lsat.fromHeader(joined);
  result = { macaroon: lsat.baseMacaroon, invoice: lsat.invoice };
} catch (e) {
  result = { error: String(e.message || e) };
}
console.log(JSON.stringify({ "lsat-js 2.0.6": result }));
