//! The paywall page (PROTOCOL.md §13.2): what a browser gets instead of a JSON 402, and the
//! status answers that turn a paid invoice into a cookie credential.
//!
//! The page is one self-contained HTML document: the price and what it buys, the invoice as a
//! QR code (SVG, drawn here) and as text, a `lightning:` link, a "Pay with WebLN" button where
//! the browser has a wallet, and a form that asks the edge's status endpoint whether the
//! invoice is paid. Its one inline script (allowed by hash in its Content-Security-Policy,
//! nothing external) polls that endpoint and reloads once paid; without JavaScript the form
//! does the same on a click. The unpaid macaroon travels in an `HttpOnly` cookie scoped to
//! the status endpoint, so it never appears in a URL or a log line.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::json::push_u64;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::api::ChallengeResponse;
use crate::challenge::Offer;
use crate::credential::{CREDENTIAL_COOKIE, PENDING_COOKIE_PREFIX};

/// Where the edge answers the page's "is it paid?" question.
pub const STATUS_PATH: &str = "/.well-known/l402/status";
/// Hex digits of the payment hash naming a pending cookie.
pub(crate) const PENDING_ID_LEN: usize = 16;

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#1a1a1a}\
main{max-width:34rem;margin:2rem auto;padding:1.5rem;background:#fff;border:1px solid #d0d0cc;border-radius:8px}\
h1{font-size:1.5rem;margin:0 0 .5rem}.price{font-size:1.25rem}dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}\
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}figure{margin:1rem 0;text-align:center}svg{width:16rem;height:16rem;max-width:100%}\
textarea{width:100%;box-sizing:border-box;font:13px/1.4 ui-monospace,monospace;color:#1a1a1a}\
button,.wallet{font:inherit;padding:.5rem 1rem;margin:.25rem .5rem .25rem 0;border-radius:6px;border:1px solid #1d4ed8;\
background:#1d4ed8;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}\
button.secondary{background:#fff;color:#1d4ed8}[hidden]{display:none!important}#msg{font-weight:600}";

const SCRIPT: &str = "(function(){var d=document.getElementById('pay'),inv=d.getAttribute('data-invoice'),\
st=d.getAttribute('data-status'),msg=document.getElementById('msg'),done=false,timer;\
function say(t){msg.textContent=t;}\
function check(){fetch(st,{credentials:'same-origin',cache:'no-store',headers:{accept:'application/json'}})\
.then(function(r){return r.status===400?{state:'expired'}:r.json();}).then(function(j){if(done)return;\
if(j.state==='settled'){done=true;clearInterval(timer);say('Paid. Loading\\u2026');location.reload();}\
else if(j.state==='expired'){done=true;clearInterval(timer);say('This invoice expired. Reload the page for a new one.');}})\
.catch(function(){});}\
var copy=document.getElementById('copy');if(navigator.clipboard){copy.hidden=false;copy.addEventListener('click',function(){\
navigator.clipboard.writeText(inv).then(function(){say('Invoice copied.');});});}\
var w=document.getElementById('webln');if(window.webln){w.hidden=false;w.addEventListener('click',function(){\
window.webln.enable().then(function(){return window.webln.sendPayment(inv);}).then(check)\
.catch(function(e){say('The wallet did not pay: '+((e&&e.message)||e));});});}\
timer=setInterval(check,1500);})();";

/// Whether a request's `Accept` prefers HTML to JSON (a browser's navigation does; `curl`,
/// SDKs and agents, with `*/*` or `application/json`, do not).
pub fn prefers_html(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept.and_then(|a| core::str::from_utf8(a).ok()) else {
        return false;
    };
    let (mut html, mut json) = (0u32, 0u32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let is = |m: &str| media.eq_ignore_ascii_case(m);
        // q in thousandths; a malformed q counts as 0 (fail to JSON, the contract).
        let q = || {
            parts
                .clone()
                .filter_map(|p| p.trim().strip_prefix("q="))
                .next()
                .map_or(1000, parse_q)
        };
        // No allocation: this reads the Accept of every sold request.
        if is("text/html") || is("application/xhtml+xml") {
            html = html.max(q());
        } else if is("application/json") || is("application/problem+json") || is("application/*") {
            json = json.max(q());
        }
    }
    html > 0 && html > json
}

/// An RFC 9110 qvalue in thousandths (`0`, `0.5`, `1.000`); `None` when malformed.
pub(crate) fn qvalue(q: &str) -> Option<u32> {
    let q = q.trim();
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    let whole = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut thousandths = 0u32;
    for (i, b) in frac.bytes().take(3).enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        thousandths += u32::from(b - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
    }
    Some((whole + thousandths).min(1000))
}

fn parse_q(q: &str) -> u32 {
    qvalue(q).unwrap_or(0)
}

/// The amount a BOLT11 invoice asks for, msat (from its human-readable part).
pub fn bolt11_amount_msat(invoice: &str) -> Option<u64> {
    let lower = invoice.to_ascii_lowercase();
    let (hrp, _) = lower.rsplit_once('1')?;
    let rest = hrp.strip_prefix("ln")?;
    let digits_at = rest.find(|c: char| c.is_ascii_digit())?;
    let amount = rest.get(digits_at..)?;
    let (num, mult) = match amount.chars().last()? {
        c @ ('m' | 'u' | 'n' | 'p') => (amount.get(..amount.len() - 1)?, Some(c)),
        _ => (amount, None),
    };
    let n: u64 = num.parse().ok()?;
    // 1 BTC = 10^11 msat.
    match mult {
        None => n.checked_mul(100_000_000_000),
        Some('m') => n.checked_mul(100_000_000),
        Some('u') => n.checked_mul(100_000),
        Some('n') => n.checked_mul(100),
        // pico-BTC: a tenth of a msat each; only whole msat are payable.
        _ => n.is_multiple_of(10).then_some(n / 10),
    }
}

/// Escapes text for HTML content and quoted attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn csp_hash(text: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// The page's Content-Security-Policy: nothing loads from anywhere; the one style and the one
/// script run by hash; `fetch` only to this origin.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src {}; script-src {}; connect-src 'self'; img-src 'self' data:; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        csp_hash(STYLE),
        csp_hash(SCRIPT)
    )
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Secure` when served over TLS.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
    secure: bool,
) -> String {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// The credential cookie for a route: `L402=<macaroon>:<preimage>`, for the token's life.
pub(crate) fn credential_cookie(
    macaroon: &str,
    preimage_hex: &str,
    path: &str,
    max_age: Option<u64>,
    secure: bool,
) -> String {
    set_cookie(
        CREDENTIAL_COOKIE,
        &format!("{macaroon}:{preimage_hex}"),
        path,
        max_age,
        secure,
    )
}

/// The pending cookie's name for a payment hash (hex).
pub(crate) fn pending_cookie_name(payment_hash_hex: &str) -> String {
    let id = payment_hash_hex
        .get(..PENDING_ID_LEN)
        .unwrap_or(payment_hash_hex);
    format!("{PENDING_COOKIE_PREFIX}{id}")
}

/// A QR code of `data` (error correction M) as an inline SVG element, labelled for assistive
/// technology: one path of dark runs per row, inside the four-module quiet zone.
fn qr_svg(data: &str) -> Option<String> {
    use qrcodegen_no_heap::{QrCode, QrCodeEcc, Version};
    let mut temp = vec![0u8; Version::MAX.buffer_len()];
    let mut out = vec![0u8; Version::MAX.buffer_len()];
    let code = QrCode::encode_text(
        data,
        &mut temp,
        &mut out,
        QrCodeEcc::Medium,
        Version::MIN,
        Version::MAX,
        None,
        false,
    )
    .ok()?;
    let size = code.size();
    let dim = u64::try_from(size + 8).ok()?;
    let mut svg = String::with_capacity(16 * 1024);
    svg.push_str(
        "<svg role=\"img\" aria-label=\"QR code of the Lightning invoice\" \
         shape-rendering=\"crispEdges\" xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" \
         width=\"256\" height=\"256\" viewBox=\"0 0 ",
    );
    push_u64(&mut svg, dim);
    svg.push(' ');
    push_u64(&mut svg, dim);
    svg.push_str(
        "\"><rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/><path fill=\"#000000\" d=\"",
    );
    for y in 0..size {
        let mut x = 0;
        while x < size {
            if !code.get_module(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < size && code.get_module(x, y) {
                x += 1;
            }
            for (c, n) in [('M', start + 4), (' ', y + 4), ('h', x - start)] {
                svg.push(c);
                push_u64(&mut svg, u64::try_from(n).ok()?);
            }
            svg.push_str("v1H");
            push_u64(&mut svg, u64::try_from(start + 4).ok()?);
            svg.push('z');
        }
    }
    svg.push_str("\"/></svg>");
    Some(svg)
}

/// What the page says the token buys, from the invoice-service's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Terms {
    /// The service's description.
    pub description: Option<String>,
    /// Seconds the token lives.
    pub lifetime_secs: Option<u64>,
    /// Requests it serves.
    pub allowance: Option<u64>,
    /// The invoice's payment hash, hex.
    pub payment_hash: String,
    /// When the invoice expires, unix seconds.
    pub expires_at: u64,
}

impl Terms {
    /// Reads them from a challenge answer the edge already accepted.
    pub fn from_answer(body: &[u8]) -> Option<Terms> {
        let r = ChallengeResponse::parse(body).ok()?;
        let hex_ok =
            r.payment_hash.len() == 64 && r.payment_hash.bytes().all(|b| b.is_ascii_hexdigit());
        hex_ok.then_some(Terms {
            description: r.description.filter(|d| !d.is_empty()),
            lifetime_secs: r.lifetime_secs,
            allowance: r.allowance,
            payment_hash: r.payment_hash.to_ascii_lowercase(),
            expires_at: r.expires_at,
        })
    }
}

fn duration(secs: u64) -> String {
    let units = [
        (86_400, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    for (size, name) in units {
        if secs >= size && secs.is_multiple_of(size) {
            let n = secs / size;
            return format!("{n} {name}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("{secs} seconds")
}

fn sat(msat: u64) -> String {
    if msat.is_multiple_of(1000) {
        format!("{} sat", msat / 1000)
    } else {
        format!("{}.{:03} sat", msat / 1000, msat % 1000)
    }
}

/// The status endpoint's URL for a page: the pending id and where to come back to.
pub(crate) fn status_url(payment_hash_hex: &str, return_to: &str) -> String {
    let id = payment_hash_hex
        .get(..PENDING_ID_LEN)
        .unwrap_or(payment_hash_hex);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("p", id)
        .append_pair("return", return_to)
        .finish();
    format!("{STATUS_PATH}?{query}")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{}</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>",
        esc(title)
    )
}

fn check_form(payment_hash_hex: &str, return_to: &str, label: &str) -> String {
    let id = payment_hash_hex
        .get(..PENDING_ID_LEN)
        .unwrap_or(payment_hash_hex);
    format!(
        "<form method=\"get\" action=\"{STATUS_PATH}\"><input type=\"hidden\" name=\"p\" value=\"{}\">\
         <input type=\"hidden\" name=\"return\" value=\"{}\"><button type=\"submit\" class=\"secondary\">{label}</button></form>",
        esc(id),
        esc(return_to)
    )
}

/// The paywall page for a 402: `service` as the route sells it, `return_to` the request
/// target to reload once paid.
pub fn render_page(offer: &Offer, terms: &Terms, service: &str, return_to: &str) -> String {
    let invoice = offer.l402.invoice();
    let price = bolt11_amount_msat(invoice).map_or_else(|| "see invoice".to_owned(), sat);
    let what = terms.description.as_deref().unwrap_or(service);
    let mut facts = format!(
        "<dt>Service</dt><dd>{}</dd><dt>Resource</dt><dd>{}</dd>",
        esc(service),
        esc(return_to)
    );
    if let Some(l) = terms.lifetime_secs {
        facts.push_str(&format!("<dt>Access for</dt><dd>{}</dd>", duration(l)));
    }
    if let Some(a) = terms.allowance {
        facts.push_str(&format!(
            "<dt>Requests</dt><dd>{a} request{}</dd>",
            if a == 1 { "" } else { "s" }
        ));
    }
    let qr = qr_svg(&format!("lightning:{invoice}").to_ascii_uppercase()).unwrap_or_default();
    let status = status_url(&terms.payment_hash, return_to);
    let body = format!(
        "<h1>Payment required</h1>\
         <p class=\"price\">{what}: <strong>{price}</strong></p>\
         <dl>{facts}</dl>\
         <div id=\"pay\" data-invoice=\"{inv}\" data-status=\"{status}\">\
         <figure>{qr}<figcaption>Scan with a Lightning wallet, or open it on this device.</figcaption></figure>\
         <p><a class=\"wallet\" href=\"lightning:{inv}\">Open in wallet</a>\
         <button type=\"button\" id=\"webln\" hidden>Pay with WebLN</button>\
         <button type=\"button\" id=\"copy\" class=\"secondary\" hidden>Copy invoice</button></p>\
         <label for=\"invoice\">Lightning invoice</label>\
         <textarea id=\"invoice\" readonly rows=\"5\">{inv}</textarea>\
         <p id=\"msg\" role=\"status\" aria-live=\"polite\">Waiting for payment. This page reloads by itself once the invoice is paid.</p>\
         {form}</div><script>{SCRIPT}</script>",
        what = esc(what),
        inv = esc(invoice),
        status = esc(&status),
        form = check_form(&terms.payment_hash, return_to, "I have paid: continue"),
    );
    page(&format!("Payment required: {service}"), &body)
}

/// The status endpoint's page for a browser without JavaScript whose invoice is not paid (or
/// expired): check again, or get a new invoice.
pub(crate) fn render_status_page(expired: bool, payment_hash_hex: &str, return_to: &str) -> String {
    let body = if expired {
        format!(
            "<h1>Invoice expired</h1><p>This invoice can no longer be paid.</p>\
             <p><a class=\"wallet\" href=\"{}\">Get a new invoice</a></p>",
            esc(return_to)
        )
    } else {
        format!(
            "<h1>Not paid yet</h1><p id=\"msg\" role=\"status\">The invoice is not paid yet. Pay it, then check again.</p>{}",
            check_form(payment_hash_hex, return_to, "Check again")
        )
    };
    page(
        if expired {
            "Invoice expired"
        } else {
            "Not paid yet"
        },
        &body,
    )
}

/// The status endpoint's query: the pending id and a same-origin target to go back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusQuery {
    /// First [`PENDING_ID_LEN`] hex digits of the payment hash, lower case.
    pub pending: String,
    /// An origin-form target (`/path?query`) on this host.
    pub return_to: String,
}

impl StatusQuery {
    /// Parses `p=<16 hex>&return=<target>`; `None` for anything else, and for a return
    /// target that could leave this origin or break a header.
    pub fn parse(query: Option<&str>) -> Option<StatusQuery> {
        let (mut pending, mut return_to) = (None, None);
        for (k, v) in form_urlencoded::parse(query?.as_bytes()) {
            match k.as_ref() {
                "p" => pending = Some(v.into_owned()),
                "return" => return_to = Some(v.into_owned()),
                _ => {}
            }
        }
        let pending = pending?.to_ascii_lowercase();
        if pending.len() != PENDING_ID_LEN || !pending.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let return_to = return_to?;
        let same_origin = return_to.starts_with('/')
            && !return_to.starts_with("//")
            && return_to
                .bytes()
                .all(|b| (0x21..0x7f).contains(&b) && b != b'\\')
            && crate::path::canonicalize(return_to.as_bytes()).is_ok();
        same_origin.then_some(StatusQuery { pending, return_to })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::challenge::Challenge;

    const INV: &str =
        "lnbcrt10u1pjqqqqqpp5qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqsdqqcqzzsxqyz5vq";

    #[test]
    fn browsers_get_html_and_everyone_else_json() {
        let chrome = b"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        assert!(prefers_html(Some(chrome)));
        assert!(!prefers_html(None));
        assert!(!prefers_html(Some(b"*/*")));
        assert!(!prefers_html(Some(b"application/json")));
        assert!(!prefers_html(Some(b"application/json, text/html")));
        assert!(!prefers_html(Some(b"text/html;q=0.5, application/json")));
        assert!(prefers_html(Some(b"text/html, application/json;q=0.9")));
        assert!(!prefers_html(Some(b"text/html;q=0")));
        assert!(!prefers_html(Some(b"text/html;q=abc")));
        assert!(!prefers_html(Some(&[0xff, 0xfe])));
    }

    #[test]
    fn invoice_amounts() {
        assert_eq!(bolt11_amount_msat(INV), Some(1_000_000));
        assert_eq!(bolt11_amount_msat("lnbc2500n1xyz"), Some(250_000));
        assert_eq!(bolt11_amount_msat("lnbc1m1xyz"), Some(100_000_000));
        assert_eq!(bolt11_amount_msat("lntb10p1xyz"), Some(1));
        assert_eq!(bolt11_amount_msat("lnbc15p1xyz"), None);
        assert_eq!(bolt11_amount_msat("lnbc1xyz"), None);
        assert_eq!(bolt11_amount_msat("nonsense"), None);
    }

    #[test]
    fn the_page_escapes_everything_it_did_not_write() {
        let offer = Offer {
            l402: Challenge::new("AgEE", INV).unwrap(),
            payment: None,
        };
        let terms = Terms {
            description: Some("<script>alert(1)</script>".into()),
            lifetime_secs: Some(3600),
            allowance: Some(5),
            payment_hash: "ab".repeat(32),
            expires_at: 1,
        };
        let html = render_page(&offer, &terms, "weather", "/weather?a=\"><b>&x=1");
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("\"><b>"));
        assert!(html.contains("1000 sat"));
        assert!(html.contains("1 hour"));
        assert!(html.contains("5 requests"));
        assert!(html.contains("<svg role=\"img\""));
        assert!(html.contains(INV));
        assert_eq!(html.matches("<script>").count(), 1);
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
        let csp = content_security_policy();
        assert!(csp.contains(&csp_hash(SCRIPT)) && csp.contains("default-src 'none'"));
    }

    #[test]
    fn status_queries_stay_on_this_origin() {
        let url = status_url(&"ab".repeat(32), "/weather/today?x=1&y=2");
        let q = StatusQuery::parse(url.split_once('?').map(|x| x.1)).unwrap();
        assert_eq!(q.pending, "abababababababab");
        assert_eq!(q.return_to, "/weather/today?x=1&y=2");
        for bad in [
            "p=abababababababab&return=//evil.example/",
            "p=abababababababab&return=https://evil.example/",
            "p=abababababababab&return=/a%0d%0aSet-Cookie:x",
            "p=abababababababab&return=/a\\b",
            "p=zz&return=/a",
            "return=/a",
        ] {
            assert_eq!(StatusQuery::parse(Some(bad)), None, "{bad}");
        }
        assert_eq!(StatusQuery::parse(None), None);
    }

    #[test]
    fn cookies_are_http_only_and_lax() {
        let c = credential_cookie("AgEE", "00", "/weather", Some(60), true);
        assert_eq!(
            c,
            "L402=AgEE:00; Path=/weather; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        assert_eq!(
            pending_cookie_name(&"cd".repeat(32)),
            "L402-pending-cdcdcdcdcdcdcdcd"
        );
        assert_eq!(duration(7200), "2 hours");
        assert_eq!(duration(90), "90 seconds");
        assert_eq!(sat(1500), "1.500 sat");
    }
}
