//! JSON (RFC 8259) as core reads and writes it: a pull [`Reader`] over a body and a [`Writer`]
//! into a `String`, shared by every wire type, the filter's configuration and the discovery
//! documents.
//!
//! Not serde: serde's derived code is generated per type and monomorphized per format, and it
//! made up the largest share of the Envoy filter (issue 18). Measured in one `wasm32-wasip1`
//! module (opt-level z, `wasm-opt -Oz`) parsing the filter's configuration struct: serde_json
//! +53 KB, nanoserde +59 KB, miniserde +16 KB (no error detail, unknown fields ignored), this
//! reader a few KB (docs/BENCHMARKS.md, "Size"). The rules the derived code gave us are kept
//! where they matter for security: a duplicate member is refused (two parsers must never read
//! one body two ways), strings are checked UTF-8 with escapes decoded exactly (lone surrogates
//! refused), integers are exact (no float, no sign, no overflow), nesting is bounded and
//! skipping never recurses.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

/// Deepest nesting a reader accepts (an attacker's `[[[[…` costs a counter, never a stack).
pub const MAX_DEPTH: u32 = 64;

/// What went wrong, with a stable name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonErrorKind {
    /// Not JSON (RFC 8259) at this byte.
    #[error("not valid JSON")]
    Syntax,
    /// Nested deeper than the reader allows.
    #[error("nested too deeply")]
    TooDeep,
    /// A value of another type than the field takes.
    #[error("expected a string")]
    ExpectedString,
    /// A value of another type than the field takes.
    #[error("expected a non-negative integer")]
    ExpectedInteger,
    /// A value of another type than the field takes.
    #[error("expected true or false")]
    ExpectedBool,
    /// A value of another type than the field takes.
    #[error("expected an object")]
    ExpectedObject,
    /// A value of another type than the field takes.
    #[error("expected an array")]
    ExpectedArray,
    /// An integer too large for the field.
    #[error("number out of range")]
    OutOfRange,
    /// A member this type does not have.
    #[error("unknown field")]
    UnknownField,
    /// The same member twice.
    #[error("duplicate field")]
    DuplicateField,
    /// A member this type requires is absent.
    #[error("missing field")]
    MissingField,
    /// Something other than whitespace after the value.
    #[error("trailing characters")]
    Trailing,
}

/// A refused JSON body: where (`path`: the dotted field, `[i]` for an item; empty for the
/// top level), what, and the byte offset. Never carries a value from the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// What went wrong.
    pub kind: JsonErrorKind,
    /// The field it went wrong in (`invoice_service.timeout_ms`, `routes[2].path`).
    pub path: String,
    /// Byte offset in the body.
    pub at: usize,
}

impl JsonError {
    const fn new(kind: JsonErrorKind, at: usize) -> Self {
        JsonError {
            kind,
            path: String::new(),
            at,
        }
    }

    /// The same error one level down: inside member `name` (or item `[i]` when `name` is an
    /// index written `[i]`).
    pub fn within(mut self, name: &str) -> Self {
        if !self.path.is_empty() && !self.path.starts_with('[') {
            self.path.insert(0, '.');
        }
        self.path.insert_str(0, name);
        self
    }

    /// The same error inside item `i` of an array.
    pub fn item(self, i: usize) -> Self {
        let mut name = String::from("[");
        push_u64(&mut name, i as u64);
        name.push(']');
        self.within(&name)
    }
}

impl core::fmt::Display for JsonError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if !self.path.is_empty() {
            f.write_str(&self.path)?;
            f.write_str(": ")?;
        }
        f.write_str(self.kind.as_str())?;
        f.write_str(" at byte ")?;
        let mut n = String::new();
        push_u64(&mut n, self.at as u64);
        f.write_str(&n)
    }
}

impl core::error::Error for JsonError {}

impl JsonErrorKind {
    /// The stable phrase.
    pub const fn as_str(self) -> &'static str {
        match self {
            JsonErrorKind::Syntax => "not valid JSON",
            JsonErrorKind::TooDeep => "nested too deeply",
            JsonErrorKind::ExpectedString => "expected a string",
            JsonErrorKind::ExpectedInteger => "expected a non-negative integer",
            JsonErrorKind::ExpectedBool => "expected true or false",
            JsonErrorKind::ExpectedObject => "expected an object",
            JsonErrorKind::ExpectedArray => "expected an array",
            JsonErrorKind::OutOfRange => "number out of range",
            JsonErrorKind::UnknownField => "unknown field",
            JsonErrorKind::DuplicateField => "duplicate field",
            JsonErrorKind::MissingField => "missing field",
            JsonErrorKind::Trailing => "trailing characters",
        }
    }
}

/// A result of reading.
pub type JsonResult<T> = Result<T, JsonError>;

/// A pull reader: the caller asks for the value it expects next.
#[derive(Debug)]
pub struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
    depth: u32,
}

/// An object being read: [`Fields::next`] yields its member names in order.
#[derive(Debug)]
pub struct Fields {
    first: bool,
}

/// An array being read: [`Items::next`] says whether another item follows.
#[derive(Debug)]
pub struct Items {
    first: bool,
    index: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `body`.
    pub fn new(body: &'a [u8]) -> Self {
        Reader {
            s: body,
            pos: 0,
            depth: 0,
        }
    }

    /// Reads one whole document with `f`, refusing anything after it.
    pub fn document<T>(
        body: &'a [u8],
        f: impl FnOnce(&mut Reader<'a>) -> JsonResult<T>,
    ) -> JsonResult<T> {
        let mut r = Reader::new(body);
        let v = f(&mut r)?;
        r.ws();
        if r.pos < r.s.len() {
            return Err(r.err(JsonErrorKind::Trailing));
        }
        Ok(v)
    }

    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError::new(kind, self.pos)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &[u8]) -> JsonResult<()> {
        match self.s.get(self.pos..self.pos + word.len()) {
            Some(w) if w == word => {
                self.pos += word.len();
                Ok(())
            }
            _ => Err(self.err(JsonErrorKind::Syntax)),
        }
    }

    /// Whether the next value is `null` (consumed if so): an `Option` field's `None`.
    pub fn null(&mut self) -> JsonResult<bool> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A string, escapes decoded. Borrowed from the body when it has none.
    pub fn string(&mut self) -> JsonResult<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err(self.err(JsonErrorKind::ExpectedString));
        }
        self.pos += 1;
        let start = self.pos;
        let s = self.s;
        // The fast path: no escape, so the body's bytes are the string.
        loop {
            match s.get(self.pos) {
                None => return Err(self.err(JsonErrorKind::Syntax)),
                Some(b'"') => {
                    let raw = s.get(start..self.pos).unwrap_or_default();
                    self.pos += 1;
                    return core::str::from_utf8(raw).map(Cow::Borrowed).map_err(|e| {
                        JsonError::new(JsonErrorKind::Syntax, start + e.valid_up_to())
                    });
                }
                Some(b'\\') => break,
                Some(b) if *b < 0x20 => return Err(self.err(JsonErrorKind::Syntax)),
                Some(_) => self.pos += 1,
            }
        }
        let mut out: Vec<u8> = s.get(start..self.pos).unwrap_or_default().to_vec();
        loop {
            let Some(&b) = s.get(self.pos) else {
                return Err(self.err(JsonErrorKind::Syntax));
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = s.get(self.pos) else {
                        return Err(self.err(JsonErrorKind::Syntax));
                    };
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.err(JsonErrorKind::Syntax)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => return Err(self.err(JsonErrorKind::Syntax)),
                b => out.push(b),
            }
        }
        String::from_utf8(out)
            .map(Cow::Owned)
            .map_err(|_| JsonError::new(JsonErrorKind::Syntax, start))
    }

    fn hex4(&mut self) -> JsonResult<u32> {
        let digits = self
            .s
            .get(self.pos..self.pos + 4)
            .ok_or(self.err(JsonErrorKind::Syntax))?;
        let mut v = 0u32;
        for d in digits {
            let n = (*d as char)
                .to_digit(16)
                .ok_or(self.err(JsonErrorKind::Syntax))?;
            v = v * 16 + n;
        }
        self.pos += 4;
        Ok(v)
    }

    /// After `\u`: one code point, a surrogate pair joined; a lone surrogate is refused.
    fn unicode_escape(&mut self) -> JsonResult<char> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.err(JsonErrorKind::Syntax));
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.err(JsonErrorKind::Syntax));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.err(JsonErrorKind::Syntax)),
            c => c,
        };
        char::from_u32(code).ok_or(self.err(JsonErrorKind::Syntax))
    }

    /// A non-negative integer written as one (`7`, not `7.0`, `7e0` or `-0`).
    pub fn u64(&mut self) -> JsonResult<u64> {
        let start = self.peek().map(|_| self.pos);
        let Some(start) = start else {
            return Err(self.err(JsonErrorKind::ExpectedInteger));
        };
        let end = self.number_end()?;
        let text = self.s.get(start..end).unwrap_or_default();
        if !text.iter().all(u8::is_ascii_digit) {
            self.pos = start;
            return Err(self.err(JsonErrorKind::ExpectedInteger));
        }
        let mut v: u64 = 0;
        for d in text {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .ok_or(JsonError::new(JsonErrorKind::OutOfRange, start))?;
        }
        self.pos = end;
        Ok(v)
    }

    /// A non-negative integer that fits a `u32`.
    pub fn u32(&mut self) -> JsonResult<u32> {
        let at = self.pos;
        u32::try_from(self.u64()?).map_err(|_| JsonError::new(JsonErrorKind::OutOfRange, at))
    }

    /// The end of a number starting here (RFC 8259 §6); the position does not move. A
    /// non-number is a type error, a broken number a syntax error.
    fn number_end(&mut self) -> JsonResult<usize> {
        let s = self.s;
        let mut i = self.pos;
        let digits = |i: &mut usize| {
            let from = *i;
            while s.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if s.get(i) == Some(&b'-') {
            i += 1;
        }
        match s.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ if i > self.pos => return Err(JsonError::new(JsonErrorKind::Syntax, i)),
            _ => return Err(self.err(JsonErrorKind::ExpectedInteger)),
        }
        if s.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(JsonError::new(JsonErrorKind::Syntax, i));
            }
        }
        if let Some(b'e' | b'E') = s.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = s.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(JsonError::new(JsonErrorKind::Syntax, i));
            }
        }
        Ok(i)
    }

    /// `true` or `false`.
    pub fn bool(&mut self) -> JsonResult<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| true),
            Some(b'f') => self.literal(b"false").map(|()| false),
            _ => Err(self.err(JsonErrorKind::ExpectedBool)),
        }
    }

    /// Starts an object.
    pub fn object(&mut self) -> JsonResult<Fields> {
        if !self.eat(b'{') {
            return Err(self.err(JsonErrorKind::ExpectedObject));
        }
        self.enter()?;
        Ok(Fields { first: true })
    }

    /// Starts an array.
    pub fn array(&mut self) -> JsonResult<Items> {
        if !self.eat(b'[') {
            return Err(self.err(JsonErrorKind::ExpectedArray));
        }
        self.enter()?;
        Ok(Items {
            first: true,
            index: 0,
        })
    }

    fn enter(&mut self) -> JsonResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(JsonErrorKind::TooDeep));
        }
        Ok(())
    }

    /// Skips one value of any type, checking its syntax; iterative, bounded by the depth.
    pub fn skip(&mut self) -> JsonResult<()> {
        let base = self.depth;
        // Whether the innermost open container is an object, one bit per level above `base`.
        let mut objects: u64 = 0;
        loop {
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    self.enter()?;
                    objects = objects << 1 | 1;
                    if self.eat(b'}') {
                        self.depth -= 1;
                        objects >>= 1;
                    } else {
                        self.string()?;
                        if !self.eat(b':') {
                            return Err(self.err(JsonErrorKind::Syntax));
                        }
                        continue;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.enter()?;
                    objects <<= 1;
                    if self.eat(b']') {
                        self.depth -= 1;
                        objects >>= 1;
                    } else {
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.pos = self.number_end()?,
                _ => return Err(self.err(JsonErrorKind::Syntax)),
            }
            // A value ended: close what it ends, or step to the next member or item.
            loop {
                if self.depth == base {
                    return Ok(());
                }
                let in_object = objects & 1 == 1;
                if self.eat(b',') {
                    if in_object {
                        self.string()?;
                        if !self.eat(b':') {
                            return Err(self.err(JsonErrorKind::Syntax));
                        }
                    }
                    break;
                }
                if self.eat(if in_object { b'}' } else { b']' }) {
                    self.depth -= 1;
                    objects >>= 1;
                    continue;
                }
                return Err(self.err(JsonErrorKind::Syntax));
            }
        }
    }

    /// Skips one value and returns its text as written (a nested document handed on whole).
    pub fn raw(&mut self) -> JsonResult<&'a str> {
        self.ws();
        let start = self.pos;
        self.skip()?;
        let text = self.s.get(start..self.pos).unwrap_or_default();
        core::str::from_utf8(text).map_err(|_| JsonError::new(JsonErrorKind::Syntax, start))
    }

    /// A string, owned.
    pub fn owned(&mut self) -> JsonResult<String> {
        self.string().map(Cow::into_owned)
    }

    /// An optional string: `null` is `None`.
    pub fn opt_string(&mut self) -> JsonResult<Option<String>> {
        if self.null()? {
            return Ok(None);
        }
        self.string().map(|s| Some(s.into_owned()))
    }

    /// An optional integer: `null` is `None`.
    pub fn opt_u64(&mut self) -> JsonResult<Option<u64>> {
        if self.null()? {
            return Ok(None);
        }
        self.u64().map(Some)
    }

    /// An optional `true`/`false`: `null` is `None`.
    pub fn opt_bool(&mut self) -> JsonResult<Option<bool>> {
        if self.null()? {
            return Ok(None);
        }
        self.bool().map(Some)
    }

    /// An array of strings (`null` reads as empty, as a defaulted field).
    pub fn strings(&mut self) -> JsonResult<Vec<String>> {
        let mut out = Vec::new();
        if self.null()? {
            return Ok(out);
        }
        let mut items = self.array()?;
        while items.next(self)? {
            let i = items.index();
            out.push(self.string().map_err(|e| e.item(i))?.into_owned());
        }
        Ok(out)
    }

    /// An error of `kind` at the current position (for a caller's own checks).
    pub fn error(&self, kind: JsonErrorKind) -> JsonError {
        self.err(kind)
    }
}

impl Fields {
    /// The next member's name (the reader then stands at its value), or `None` at the end.
    pub fn next<'a>(&mut self, r: &mut Reader<'a>) -> JsonResult<Option<Cow<'a, str>>> {
        if r.eat(b'}') {
            r.depth -= 1;
            return Ok(None);
        }
        if !core::mem::take(&mut self.first) && !r.eat(b',') {
            return Err(r.err(JsonErrorKind::Syntax));
        }
        let key = r.string().map_err(|e| JsonError {
            kind: JsonErrorKind::Syntax,
            ..e
        })?;
        if !r.eat(b':') {
            return Err(r.err(JsonErrorKind::Syntax));
        }
        Ok(Some(key))
    }
}

impl Items {
    /// Whether another item follows (the reader then stands at it).
    pub fn next(&mut self, r: &mut Reader<'_>) -> JsonResult<bool> {
        if r.eat(b']') {
            r.depth -= 1;
            return Ok(false);
        }
        if !core::mem::take(&mut self.first) {
            if !r.eat(b',') {
                return Err(r.err(JsonErrorKind::Syntax));
            }
            self.index += 1;
        }
        Ok(true)
    }

    /// The position of the item [`Items::next`] last announced.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// Where one member's value goes, by its type. `null` leaves the slot empty (an absent
/// optional member), except for [`Field::Raw`], which keeps the text as written.
pub enum Field<'s, 'a> {
    /// A string.
    Str(&'s mut Option<String>),
    /// A non-negative integer.
    U64(&'s mut Option<u64>),
    /// `true` or `false`.
    Bool(&'s mut Option<bool>),
    /// An array of strings.
    Strings(&'s mut Option<Vec<String>>),
    /// The value's JSON text, unparsed (a nested document handed on whole).
    Raw(&'s mut Option<&'a str>),
    /// Read by the caller (a nested object).
    With(&'s mut dyn FnMut(&mut Reader<'a>) -> JsonResult<()>),
}

/// What a member not in the table means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// An error: the caller's configuration or request must not carry a misspelt member.
    Refuse,
    /// Skipped: a newer peer may add members.
    Skip,
}

/// Reads one object into `fields` (name, slot): each member once (a second occurrence is
/// refused), unknown members as `unknown` says. One routine for every type, not code per type:
/// the tables are data.
pub fn read_object<'a>(
    r: &mut Reader<'a>,
    fields: &mut [(&str, Field<'_, 'a>)],
    unknown: Unknown,
) -> JsonResult<()> {
    let mut seen: u64 = 0;
    let mut members = r.object()?;
    while let Some(key) = members.next(r)? {
        let Some(i) = fields.iter().position(|(n, _)| *n == &*key) else {
            if unknown == Unknown::Refuse {
                return Err(r.error(JsonErrorKind::UnknownField).within(&key));
            }
            r.skip()?;
            continue;
        };
        let bit = 1u64.checked_shl(i as u32).unwrap_or(0);
        if seen & bit != 0 {
            return Err(r.error(JsonErrorKind::DuplicateField).within(&key));
        }
        seen |= bit;
        let Some((_, field)) = fields.get_mut(i) else {
            continue;
        };
        read_field(r, field).map_err(|e| e.within(&key))?;
    }
    Ok(())
}

fn read_field<'a>(r: &mut Reader<'a>, field: &mut Field<'_, 'a>) -> JsonResult<()> {
    if let Field::Raw(slot) = field {
        **slot = Some(r.raw()?);
        return Ok(());
    }
    if let Field::With(f) = field {
        return f(r);
    }
    if r.null()? {
        return Ok(());
    }
    match field {
        Field::Str(slot) => **slot = Some(r.owned()?),
        Field::U64(slot) => **slot = Some(r.u64()?),
        Field::Bool(slot) => **slot = Some(r.bool()?),
        Field::Strings(slot) => **slot = Some(r.strings()?),
        Field::Raw(_) | Field::With(_) => {}
    }
    Ok(())
}

/// A required member that never came (or came as `null`).
pub fn required<T>(slot: Option<T>, name: &str, r: &Reader<'_>) -> JsonResult<T> {
    slot.ok_or_else(|| r.error(JsonErrorKind::MissingField).within(name))
}

/// Appends `n` in decimal (no `core::fmt` on the paths that write JSON and headers).
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    for b in buf.get(i..).unwrap_or_default() {
        out.push(char::from(*b));
    }
}

/// A writer of one JSON value, compact (no whitespace). Members come out in the order they
/// are written: RFC 8785 (JCS) output is a caller that writes them sorted.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    /// A value was written at this level: the next member or item needs a comma.
    comma: bool,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }

    fn sep(&mut self) {
        if self.comma {
            self.out.push(',');
        }
        self.comma = true;
    }

    /// Opens an object (as a value).
    pub fn open_object(&mut self) -> &mut Self {
        self.sep();
        self.out.push('{');
        self.comma = false;
        self
    }

    /// Closes the innermost object.
    pub fn close_object(&mut self) -> &mut Self {
        self.out.push('}');
        self.comma = true;
        self
    }

    /// Opens an array (as a value).
    pub fn open_array(&mut self) -> &mut Self {
        self.sep();
        self.out.push('[');
        self.comma = false;
        self
    }

    /// Closes the innermost array.
    pub fn close_array(&mut self) -> &mut Self {
        self.out.push(']');
        self.comma = true;
        self
    }

    /// A member's name; its value is written next.
    pub fn key(&mut self, name: &str) -> &mut Self {
        self.sep();
        escape_into(&mut self.out, name);
        self.out.push(':');
        self.comma = false;
        self
    }

    /// A string value.
    pub fn string(&mut self, v: &str) -> &mut Self {
        self.sep();
        escape_into(&mut self.out, v);
        self
    }

    /// An integer value.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.sep();
        push_u64(&mut self.out, v);
        self
    }

    /// `true` or `false`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    /// `null`.
    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.out.push_str("null");
        self
    }

    /// A value already written as JSON (the caller vouches for it).
    pub fn raw(&mut self, json: &str) -> &mut Self {
        self.sep();
        self.out.push_str(json);
        self
    }

    /// `"name": "v"`.
    pub fn str_member(&mut self, name: &str, v: &str) -> &mut Self {
        self.key(name).string(v)
    }

    /// `"name": n`.
    pub fn u64_member(&mut self, name: &str, v: u64) -> &mut Self {
        self.key(name).u64(v)
    }

    /// `"name": "v"` when `v` is some.
    pub fn opt_str_member(&mut self, name: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.key(name).string(v);
        }
        self
    }

    /// `"name": n` when `v` is some.
    pub fn opt_u64_member(&mut self, name: &str, v: Option<u64>) -> &mut Self {
        if let Some(v) = v {
            self.key(name).u64(v);
        }
        self
    }

    /// `"name": ["a", …]`.
    pub fn strings_member<'s>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = &'s str>,
    ) -> &mut Self {
        self.key(name).open_array();
        for s in items {
            self.string(s);
        }
        self.close_array()
    }

    /// The text written.
    pub fn finish(self) -> String {
        self.out
    }

    /// The text written, as a body.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out.into_bytes()
    }
}

/// A JSON string literal: `"` and `\` escaped, control characters as `\b \f \n \r \t` or
/// `\u00xx`, nothing else. This is exactly RFC 8785's (JCS) string form, and serde_json's.
pub fn escape_into(out: &mut String, v: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in v.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(v.get(start..i).unwrap_or_default());
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(
                HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
            ));
            out.push(char::from(
                HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
            ));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(v.get(start..).unwrap_or_default());
    out.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    /// A document of any shape, read back into serde_json's model to compare.
    fn read_any(r: &mut Reader<'_>) -> JsonResult<serde_json::Value> {
        use serde_json::Value;
        if r.null()? {
            return Ok(Value::Null);
        }
        match r.peek() {
            Some(b'{') => {
                let mut m = serde_json::Map::new();
                let mut f = r.object()?;
                while let Some(k) = f.next(r)? {
                    let v = read_any(r)?;
                    m.insert(k.into_owned(), v);
                }
                Ok(Value::Object(m))
            }
            Some(b'[') => {
                let mut v = vec![];
                let mut items = r.array()?;
                while items.next(r)? {
                    v.push(read_any(r)?);
                }
                Ok(Value::Array(v))
            }
            Some(b'"') => Ok(Value::String(r.string()?.into_owned())),
            Some(b't' | b'f') => Ok(Value::Bool(r.bool()?)),
            _ => Ok(Value::from(r.u64()?)),
        }
    }

    #[test]
    fn strings_decode_as_serde_json_does() {
        for s in [
            r#""plain""#,
            r#""a\"b\\c\/d\b\f\n\r\t""#,
            r#""\u00e9\u20ac\ud83d\ude00""#,
            "\"caf\u{e9} \u{1f600}\"",
            r#""""#,
        ] {
            let ours = Reader::document(s.as_bytes(), |r| r.string()).unwrap();
            let theirs: String = serde_json::from_str(s).unwrap();
            assert_eq!(ours, theirs, "{s}");
        }
        for bad in [
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            r#""\x""#,
            "\"a\nb\"",
            r#""\u12""#,
            r#""open"#,
        ] {
            assert!(
                Reader::document(bad.as_bytes(), |r| r.string()).is_err(),
                "{bad}"
            );
            assert!(serde_json::from_str::<String>(bad).is_err(), "{bad}");
        }
        // Invalid UTF-8 is refused, escaped or not.
        assert!(Reader::document(b"\"\xff\"", |r| r.string()).is_err());
        assert!(Reader::document(b"\"\\n\xff\"", |r| r.string()).is_err());
    }

    #[test]
    fn integers_are_exact() {
        let read = |s: &str| Reader::document(s.as_bytes(), |r| r.u64());
        assert_eq!(read("0").unwrap(), 0);
        assert_eq!(read(" 18446744073709551615 ").unwrap(), u64::MAX);
        assert_eq!(
            read("18446744073709551616").unwrap_err().kind,
            JsonErrorKind::OutOfRange
        );
        for not_integer in ["1.0", "1e3", "-1", "-0", "\"1\"", "true"] {
            assert_eq!(
                read(not_integer).unwrap_err().kind,
                JsonErrorKind::ExpectedInteger,
                "{not_integer}"
            );
        }
        for broken in ["01", "1.", "-", "1e", "1e+"] {
            assert!(read(broken).is_err(), "{broken}");
        }
        assert_eq!(
            Reader::document(b"4294967296", |r| r.u32())
                .unwrap_err()
                .kind,
            JsonErrorKind::OutOfRange
        );
    }

    #[test]
    fn skip_checks_syntax_without_recursion() {
        for ok in [
            r#"{"a":[1,2,{"b":null}],"c":"d","e":-1.5e3,"f":true,"g":{}}"#,
            "[]",
            "[[],[[]],{}]",
            r#"{"":""}"#,
        ] {
            Reader::document(ok.as_bytes(), |r| r.skip()).unwrap();
            assert_eq!(Reader::document(ok.as_bytes(), |r| r.raw()).unwrap(), ok);
        }
        for bad in [
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "[1 2]",
            "{1:2}",
            "[",
            "{",
            "nul",
            "[}",
            "{]",
            "{\"a\":1]",
        ] {
            assert!(
                Reader::document(bad.as_bytes(), |r| r.skip()).is_err(),
                "{bad}"
            );
        }
        let deep = "[".repeat(100_000);
        assert_eq!(
            Reader::document(deep.as_bytes(), |r| r.skip())
                .unwrap_err()
                .kind,
            JsonErrorKind::TooDeep
        );
        let ok_deep = format!("{}{}", "[".repeat(64), "]".repeat(64));
        Reader::document(ok_deep.as_bytes(), |r| r.skip()).unwrap();
    }

    #[test]
    fn documents_refuse_trailing_bytes() {
        assert_eq!(
            Reader::document(b"{} x", |r| r.skip()).unwrap_err().kind,
            JsonErrorKind::Trailing
        );
        assert!(Reader::document(b"  {}\n", |r| r.skip()).is_ok());
        assert!(Reader::document(b"", |r| r.skip()).is_err());
    }

    #[test]
    fn any_document_reads_as_serde_json_reads_it() {
        let doc = r#"{"name":"w","n":[1,2,3],"o":{"x":"\u0041","y":[]},"t":true,"z":null}"#;
        let ours = Reader::document(doc.as_bytes(), read_any).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(doc).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn writer_escapes_as_serde_json_and_jcs_do() {
        let tricky = "q\"b\\s/\u{1}\u{1f}\u{7f}\n\r\t\u{8}\u{c}é😀";
        let mut w = Writer::new();
        w.open_object()
            .str_member("s", tricky)
            .u64_member("n", u64::MAX)
            .key("b")
            .bool(false)
            .key("l")
            .open_array()
            .string("x")
            .null()
            .open_object()
            .close_object()
            .close_array()
            .opt_str_member("absent", None)
            .close_object();
        let text = w.finish();
        let expected = serde_json::json!({
            "s": tricky, "n": u64::MAX, "b": false, "l": ["x", null, {}]
        });
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            expected
        );
        // serde_json and JCS (RFC 8785 §3.2.2.2) write strings the same way: so do we.
        let mut one = String::new();
        escape_into(&mut one, tricky);
        assert_eq!(one, serde_json::to_string(tricky).unwrap());
        assert_eq!(
            one,
            serde_json_canonicalizer::to_string(&serde_json::json!(tricky)).unwrap()
        );
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let e = JsonError::new(JsonErrorKind::ExpectedInteger, 17)
            .within("timeout_ms")
            .within("invoice_service");
        assert_eq!(e.path, "invoice_service.timeout_ms");
        assert_eq!(
            e.to_string(),
            "invoice_service.timeout_ms: expected a non-negative integer at byte 17"
        );
        let e = JsonError::new(JsonErrorKind::MissingField, 3)
            .within("path")
            .item(2)
            .within("routes");
        assert_eq!(e.path, "routes[2].path");
        for k in [
            JsonErrorKind::Syntax,
            JsonErrorKind::TooDeep,
            JsonErrorKind::Trailing,
        ] {
            assert_eq!(k.to_string(), k.as_str());
        }
    }

    #[test]
    fn push_u64_writes_decimal() {
        for n in [0, 7, 10, 99, 1_000_000_007, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_round_trips(s in "\\PC*|[\\x00-\\x1f\"\\\\]*") {
            let mut w = Writer::new();
            w.string(&s);
            let text = w.finish();
            let back = Reader::document(text.as_bytes(), |r| r.string()).unwrap();
            proptest::prop_assert_eq!(back, s.as_str());
            proptest::prop_assert_eq!(serde_json::from_str::<String>(&text).unwrap(), s);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_agree_on_validity(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let ours = Reader::document(&bytes, |r| r.skip()).is_ok();
            let theirs = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }
}
