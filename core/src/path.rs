//! The request path as the origin will read it (PROTOCOL.md §9).
//!
//! Origins normalize before they route: nginx and Go decode every escape, merge slashes and
//! resolve dot segments; Express and Spring decode too. An edge that matches the path *as sent*
//! sells `/weather` and forwards `//weather` or `/%77eather` for free. So the edge decides on a
//! canonical form (RFC 3986 section 6.2.2: escapes of unreserved characters decoded, other
//! escapes upper-cased, dot segments resolved; plus slashes merged), and refuses what no single
//! reading settles: an escaped `/` or `\` (one origin splits on it, another does not), a raw
//! `\` (Windows and WHATWG parsers read it as `/`), `;` path parameters (Tomcat and Spring strip
//! them before routing), bad escapes, escaped control bytes, non-UTF-8, and `..` above the root.
//!
//! No crate does this: `url` implements the WHATWG parser (no unreserved decoding, no slash
//! merging, `\` read as `/`), and percent-encoding crates decode silently past bad escapes.

#[allow(unused_imports)]
use crate::prelude::*;

/// Why a request target is refused (answered 400). The names are stable (bodies, metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Not origin-form: empty, or not starting with `/` (`*`, absolute-form).
    #[error("path_not_origin_form")]
    NotOriginForm,
    /// `%2F` or `%5C`: a separator some origins split on and others do not.
    #[error("path_encoded_separator")]
    EncodedSeparator,
    /// A raw `\`, read as `/` by WHATWG and Windows parsers.
    #[error("path_backslash")]
    Backslash,
    /// `;` in the path: path parameters that Tomcat and Spring strip before routing.
    #[error("path_parameter")]
    Parameter,
    /// `%` not followed by two hex digits.
    #[error("path_bad_escape")]
    BadEscape,
    /// A control byte, raw or escaped, a space, or a fragment.
    #[error("path_invalid_byte")]
    InvalidByte,
    /// The decoded path is not UTF-8.
    #[error("path_not_utf8")]
    NotUtf8,
    /// `..` that would climb above `/`.
    #[error("path_above_root")]
    AboveRoot,
    /// Raw bytes in the query that are not UTF-8, or control bytes.
    #[error("query_invalid")]
    InvalidQuery,
    /// The path is valid but not canonical, and the edge is set to refuse such paths.
    #[error("path_not_canonical")]
    NotCanonical,
}

impl PathError {
    /// Every variant, for metrics that pre-register one counter each.
    pub const ALL: [PathError; 10] = [
        PathError::NotOriginForm,
        PathError::EncodedSeparator,
        PathError::Backslash,
        PathError::Parameter,
        PathError::BadEscape,
        PathError::InvalidByte,
        PathError::NotUtf8,
        PathError::AboveRoot,
        PathError::InvalidQuery,
        PathError::NotCanonical,
    ];

    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PathError::NotOriginForm => "path_not_origin_form",
            PathError::EncodedSeparator => "path_encoded_separator",
            PathError::Backslash => "path_backslash",
            PathError::Parameter => "path_parameter",
            PathError::BadEscape => "path_bad_escape",
            PathError::InvalidByte => "path_invalid_byte",
            PathError::NotUtf8 => "path_not_utf8",
            PathError::AboveRoot => "path_above_root",
            PathError::InvalidQuery => "query_invalid",
            PathError::NotCanonical => "path_not_canonical",
        }
    }
}

/// A request target split into its canonical path and its query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalTarget {
    path: String,
    query: Option<String>,
    changed: bool,
}

impl CanonicalTarget {
    /// The canonical path (`/weather/today`), what routes are matched against.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query as sent (without `?`), validated but not rewritten.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The canonical path, owned.
    pub fn into_path(self) -> String {
        self.path
    }

    /// Whether the path as sent differs from the canonical one.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Path and query, as forwarded when the edge rewrites.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Printable ASCII a path may carry raw (RFC 3986 `pchar` and `/`, less `;` and `\`, which
/// are refused before this is asked).
const fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    for nibble in [b >> 4, b & 0xf] {
        out.push(char::from(
            *HEX_UPPER.get(usize::from(nibble)).unwrap_or(&b'0'),
        ));
    }
}

/// Canonicalizes a raw request target (`:path`, path and query as sent).
pub fn canonicalize(raw: &[u8]) -> Result<CanonicalTarget, PathError> {
    let (path, query) = match raw.iter().position(|&b| b == b'?') {
        Some(i) => (raw.get(..i).unwrap_or_default(), raw.get(i + 1..)),
        None => (raw, None),
    };
    if path.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    let query = query.map(check_query).transpose()?;
    // Pass 1: escapes. `encoded` is the path with unreserved escapes decoded and the others
    // upper-cased; `decoded` is every escape decoded, only to check UTF-8.
    let mut encoded = String::with_capacity(path.len());
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = path.get(i) {
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    path.get(i + 1).copied().and_then(hex_value),
                    path.get(i + 2).copied().and_then(hex_value),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let v = (hi << 4) | lo;
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(PathError::InvalidByte),
                    _ if is_unreserved(v) => encoded.push(char::from(v)),
                    _ => push_escaped(&mut encoded, v),
                }
                decoded.push(v);
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Parameter),
            b'#' | 0..=0x20 | 0x7f => return Err(PathError::InvalidByte),
            _ if is_path_char(b) => {
                encoded.push(char::from(b));
                decoded.push(b);
                i += 1;
            }
            _ => {
                // Raw `"<>^`{|}` and non-ASCII: legal to encode, so the canonical form does.
                push_escaped(&mut encoded, b);
                decoded.push(b);
                i += 1;
            }
        }
    }
    if core::str::from_utf8(&decoded).is_err() {
        return Err(PathError::NotUtf8);
    }
    // Pass 2: segments. Empty segments merge; `.` drops; `..` pops or climbs above the root.
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in encoded.split('/').skip(1) {
        trailing_slash = false;
        match seg {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    let mut canonical = String::with_capacity(encoded.len());
    for s in &segments {
        canonical.push('/');
        canonical.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        canonical.push('/');
    }
    let changed = canonical.as_bytes() != path;
    Ok(CanonicalTarget {
        path: canonical,
        query,
        changed,
    })
}

/// The query is forwarded as sent and matched by no rule, but it must be text an origin
/// reads one way: no control bytes, no raw non-UTF-8.
fn check_query(q: &[u8]) -> Result<String, PathError> {
    if q.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'#') {
        return Err(PathError::InvalidQuery);
    }
    String::from_utf8(q.to_vec()).map_err(|_| PathError::InvalidQuery)
}

/// Whether canonical `path` lies under canonical `prefix` on a segment boundary: `/weather`
/// covers `/weather`, `/weather/`, `/weather/today`, not `/weatherman`.
pub fn under_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn canon(p: &str) -> Result<String, PathError> {
        canonicalize(p.as_bytes()).map(|t| t.target())
    }

    #[test]
    fn canonical_forms() {
        for (raw, want) in [
            ("/weather", "/weather"),
            ("//weather", "/weather"),
            ("/./weather", "/weather"),
            ("/x/../weather", "/weather"),
            ("/%77eather", "/weather"),
            ("/%2e%2e/weather", "/weather"),
            ("/a/%2E/b", "/a/b"),
            ("/weather/", "/weather/"),
            ("/weather//", "/weather/"),
            ("/weather/.", "/weather/"),
            ("/weather/today/..", "/weather/"),
            ("/", "/"),
            ("/..", "/"),
            ("/w%c3%a9", "/w%C3%A9"),
            ("/a b", "/a b"),
            ("/a%20b", "/a%20b"),
            ("/weather?q=%2F..%2F&x=1", "/weather?q=%2F..%2F&x=1"),
            ("/a|b", "/a%7Cb"),
            ("/caf\u{e9}", "/caf%C3%A9"),
        ] {
            let got = canon(raw);
            // "/.." climbs above the root; "/a b" has a raw space: both refused below.
            if raw == "/.." || raw == "/a b" || raw == "/%2e%2e/weather" {
                assert!(got.is_err(), "{raw}");
                continue;
            }
            assert_eq!(got.as_deref(), Ok(want), "{raw}");
        }
        assert!(!canonicalize(b"/weather?x").unwrap().changed());
        assert!(canonicalize(b"//weather").unwrap().changed());
        assert!(canonicalize(b"/w%c3%a9").unwrap().changed());
        assert!(!canonicalize(b"/w%C3%A9").unwrap().changed());
    }

    #[test]
    fn ambiguous_targets_are_refused() {
        for (raw, want) in [
            (&b"/free%2F..%2Fweather"[..], PathError::EncodedSeparator),
            (b"/free/..%2fweather", PathError::EncodedSeparator),
            (b"/%2Fweather", PathError::EncodedSeparator),
            (b"/a%5cb", PathError::EncodedSeparator),
            (b"/a\\b", PathError::Backslash),
            (b"/weather;v=1", PathError::Parameter),
            (b"/free;/../weather", PathError::Parameter),
            (b"/a%zz", PathError::BadEscape),
            (b"/a%4", PathError::BadEscape),
            (b"/a%", PathError::BadEscape),
            (b"/a%00", PathError::InvalidByte),
            (b"/a\0b", PathError::InvalidByte),
            (b"/a b", PathError::InvalidByte),
            (b"/a#b", PathError::InvalidByte),
            (b"/weather\xff", PathError::NotUtf8),
            (b"/weather%ff", PathError::NotUtf8),
            (b"/%c3", PathError::NotUtf8),
            (b"/..", PathError::AboveRoot),
            (b"/%2e%2e/weather", PathError::AboveRoot),
            (b"/a/../../weather", PathError::AboveRoot),
            (b"/weather?q=\xff", PathError::InvalidQuery),
            (b"/weather?q=\x01", PathError::InvalidQuery),
            (b"weather", PathError::NotOriginForm),
            (b"", PathError::NotOriginForm),
            (b"*", PathError::NotOriginForm),
            (b"http://x/weather", PathError::NotOriginForm),
        ] {
            assert_eq!(
                canonicalize(raw),
                Err(want),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn canonical_is_a_fixed_point() {
        for raw in ["//a/./b/../c//", "/%41%42%2d", "/w%c3%a9/x", "/a|b{c}"] {
            let once = canon(raw).unwrap();
            assert_eq!(canon(&once).unwrap(), once, "{raw}");
            assert!(!canonicalize(once.as_bytes()).unwrap().changed());
        }
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(under_prefix("/weather", "/weather"));
        assert!(under_prefix("/weather/", "/weather"));
        assert!(under_prefix("/weather/today", "/weather"));
        assert!(!under_prefix("/weatherman", "/weather"));
        assert!(!under_prefix("/weathe", "/weather"));
        assert!(under_prefix("/grpc.Weather/Get", "/grpc.Weather/"));
        assert!(under_prefix("/anything", "/"));
        assert_eq!(PathError::ALL.len(), 10);
        for e in PathError::ALL {
            assert_eq!(e.to_string(), e.as_str());
        }
    }
}
