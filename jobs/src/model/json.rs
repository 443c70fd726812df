//! Strict JSON (RFC 8259 over UTF-8) for silver cleaning: the whole value is
//! validated (duplicate keys at any depth, lone surrogates, raw control
//! characters, trailing content are errors) and only the top-level members
//! are kept, with numbers as their exact tokens so integer and decimal
//! rules can be judged on the decimal value written, not on a float.
//!
//! Hand-written rather than serde_json: serde_json keeps the last of
//! duplicate keys and, without `arbitrary_precision` (a feature that would
//! change number handling for every crate in the tree), rounds tokens.
//!
//! UTF-8 is checked where it can occur, inside strings: everything outside
//! them must be ASCII for the grammar to match, so there is no separate
//! pass over the value (that pass was a tenth of silver's row checking).
//! Strings are scanned eight bytes at a time up to the first byte that
//! needs a look (a quote, a backslash, a control or non-ASCII byte).

use std::borrow::Cow;
use std::collections::HashSet;

/// A top-level member's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// The number token exactly as written (`-1.50e3`).
    Number(&'a str),
    String(Cow<'a, str>),
    /// A nested object, as its raw text (parsed again only when a rule
    /// reads one of its members: `path: location.lat`).
    Object(&'a str),
    Array,
}

/// Nesting deeper than this is rejected as malformed (it would only be an
/// attack on the parser's stack).
const MAX_DEPTH: usize = 128;

/// A top-level member: its key (unescaped) and value.
pub type Member<'a> = (Cow<'a, str>, Value<'a>);

/// Parses `bytes` as one JSON object and returns its members in order.
/// `None`: not strict JSON, or not an object.
pub fn parse_object(bytes: &[u8]) -> Option<Vec<Member<'_>>> {
    let mut members = Vec::new();
    parse_object_into(bytes, &mut members)?;
    Some(members)
}

/// [`parse_object`] into `members` (cleared first), so that a caller
/// parsing many values reuses one buffer.
pub fn parse_object_into<'a>(bytes: &'a [u8], members: &mut Vec<Member<'a>>) -> Option<()> {
    members.clear();
    let mut p = Parser { b: bytes, i: 0 };
    p.ws();
    if p.peek()? != b'{' {
        return None;
    }
    p.object(0, Some(members))?;
    p.ws();
    (p.i == p.b.len()).then_some(())
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

/// The text of `b[from..to]`, a span the parser has matched: ASCII
/// grammar and strings it validated.
fn matched(b: &[u8], from: usize, to: usize) -> &str {
    let span = &b[from..to];
    debug_assert!(std::str::from_utf8(span).is_ok());
    // SAFETY: a matched span is valid UTF-8: outside strings only ASCII
    // bytes match the grammar, and every string's bytes were validated
    // (`Parser::string`) before the span could end after it.
    unsafe { std::str::from_utf8_unchecked(span) }
}

/// The index of the first byte from `i` on that a string scan must look
/// at: `"`, `\`, a control byte (< 0x20) or a non-ASCII byte (>= 0x80);
/// `b.len()` if none.
fn plain_end(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        let quote = w ^ (ONES * u64::from(b'"'));
        let slash = w ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set when it is zero (`x - 1` borrows) or,
        // for the third term, below 0x20; `| w` flags non-ASCII bytes.
        // Borrows can flag bytes above a true hit, never below it, so the
        // lowest flag is exact.
        let hits = ((quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (w.wrapping_sub(ONES * 0x20) & !w)
            | w)
            & HIGH;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c) {
            break;
        }
        i += 1;
    }
    i
}

/// Whether two keys are equal, deciding on their length and last byte
/// first: an object's keys mostly differ there (the scan for duplicates
/// compares each key with every earlier one, and a library `memcmp` call
/// per pair of equally long keys was a measurable cost).
fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.last() == b.last() && a == b
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// An object at `self.i` (on `{`); its members are collected into
    /// `keep` when given (the top level).
    fn object(&mut self, depth: usize, mut keep: Option<&mut Vec<Member<'a>>>) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        // Duplicate keys: a linear scan over the few keys of a typical
        // object (hashing every key was a measurable cost), a set beyond.
        // Kept members are their own list of keys; nested objects, rare
        // in events, collect theirs.
        let mut keys: Vec<Cow<'a, str>> = Vec::new();
        let mut many: HashSet<Cow<'a, str>> = HashSet::new();
        let mut count = 0usize;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            if count < 16 {
                let seen = match &keep {
                    Some(members) => members.iter().any(|(k, _)| same_key(k, &key)),
                    None => keys.iter().any(|k| same_key(k, &key)),
                };
                if seen {
                    return None;
                }
                if keep.is_none() {
                    keys.push(key.clone());
                }
            } else {
                if many.is_empty() {
                    match &keep {
                        Some(members) => many.extend(members.iter().map(|(k, _)| k.clone())),
                        None => many.extend(keys.iter().cloned()),
                    }
                }
                if !many.insert(key.clone()) {
                    return None;
                }
            }
            count += 1;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = self.value(depth + 1)?;
            if let Some(members) = keep.as_deref_mut() {
                members.push((key, value));
            }
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            self.value(depth + 1)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value<'a>> {
        Some(match self.peek()? {
            b'{' => {
                let start = self.i;
                self.object(depth, None)?;
                Value::Object(matched(self.b, start, self.i))
            }
            b'[' => {
                self.array(depth)?;
                Value::Array
            }
            b'"' => Value::String(self.string()?),
            b't' => self.literal("true", Value::Bool(true))?,
            b'f' => self.literal("false", Value::Bool(false))?,
            b'n' => self.literal("null", Value::Null)?,
            b'-' | b'0'..=b'9' => Value::Number(self.number()?),
            _ => return None,
        })
    }

    fn literal(&mut self, word: &str, v: Value<'a>) -> Option<Value<'a>> {
        self.b[self.i..].starts_with(word.as_bytes()).then(|| {
            self.i += word.len();
            v
        })
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<&'a str> {
        let start = self.i;
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        Some(matched(self.b, start, self.i))
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    /// A string at `self.i` (on `"`), unescaped and UTF-8-checked;
    /// borrowed when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        let mut ascii = true;
        // Fast path: no escapes.
        loop {
            self.i = plain_end(self.b, self.i);
            match self.peek()? {
                b'"' => {
                    let bytes = &self.b[start..self.i];
                    self.i += 1;
                    if !ascii {
                        std::str::from_utf8(bytes).ok()?;
                    }
                    return Some(Cow::Borrowed(matched(self.b, start, self.i - 1)));
                }
                b'\\' => break,
                c if c < 0x20 => return None,
                // Non-ASCII: checked with the whole string at its end.
                _ => {
                    ascii = false;
                    self.i += 1;
                }
            }
        }
        let mut out = String::from(std::str::from_utf8(&self.b[start..self.i]).ok()?);
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    self.i += 1;
                    let c = match self.peek()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            self.i += 1;
                            let hi = self.hex4()?;
                            let c = match hi {
                                0xD800..=0xDBFF => {
                                    // A high surrogate must pair with a low one.
                                    if !self.b[self.i..].starts_with(b"\\u") {
                                        return None;
                                    }
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return None;
                                    }
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => char::from_u32(hi)?,
                            };
                            out.push(c);
                            continue;
                        }
                        _ => return None,
                    };
                    self.i += 1;
                    out.push(c);
                }
                c if c < 0x20 => return None,
                _ => {
                    // A run of text up to the next quote, backslash or
                    // control byte (all ASCII, so never inside a UTF-8
                    // sequence), checked as UTF-8.
                    let from = self.i;
                    while self
                        .peek()
                        .is_some_and(|c| c != b'"' && c != b'\\' && c >= 0x20)
                    {
                        self.i += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.b[from..self.i]).ok()?);
                }
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        let v = h
            .iter()
            .try_fold(0u32, |v, &c| Some(v << 4 | (c as char).to_digit(16)?))?;
        self.i += 4;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        parse_object(s.as_bytes()).is_some()
    }

    #[test]
    fn accepts_strict_objects() {
        assert!(ok(
            r#"{"a": 1, "b": [1, {"c": null}], "d": "x\u00e9\ud83d\ude00"}"#
        ));
        assert!(ok(" {}\n"));
        let m = parse_object(br#"{"n": -1.50e3, "s": "a\"b"}"#).unwrap();
        assert_eq!(m[0].1, Value::Number("-1.50e3"));
        assert_eq!(m[1].1, Value::String(Cow::Owned("a\"b".into())));
    }

    /// Strings of every length around the word-wise scan's eight bytes,
    /// with the byte that stops it at every place: the same text back.
    #[test]
    fn strings_are_read_whole_at_every_length() {
        for len in 0..40 {
            for stop in ["", "\\\"", "\\n", "é", "😀", "\\u00e9"] {
                for at in 0..=len {
                    let plain: String = (0..len)
                        .map(|i| char::from(b'a' + (i % 26) as u8))
                        .collect();
                    let raw = format!("{}{stop}{}", &plain[..at], &plain[at..]);
                    let text = format!(r#"{{"k{raw}": "{raw}"}}"#);
                    let want: serde_json::Value = serde_json::from_str(&text).expect("test value");
                    let (key, value) = want
                        .as_object()
                        .and_then(|o| o.iter().next())
                        .expect("test value");
                    let m = parse_object(text.as_bytes()).expect("test value");
                    assert_eq!(m[0].0, key.as_str(), "{text}");
                    assert_eq!(
                        m[0].1,
                        Value::String(Cow::Owned(value.as_str().expect("test value").into())),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_everything_the_spec_calls_malformed() {
        for bad in [
            r#"{"a": NaN}"#,
            r#"{"a": Infinity}"#,
            r#"{"a": -Infinity}"#,
            r#"{"a": 1,}"#,
            r#"{'a': 1}"#,
            r#"{a: 1}"#,
            "{\"a\": \"x\ty\"}",
            r#"{"a": "\x"}"#,
            "\u{feff}{\"a\": 1}",
            r#"{"a": "\ud800"}"#,
            r#"{"a": "\udc00"}"#,
            r#"{"a": "\ud800\u0041"}"#,
            r#"{"a": 1, "a": 2}"#,
            r#"{"a": 1, "\u0061": 2}"#,
            r#"{"o": {"x": 1, "x": 2}}"#,
            r#"{"o": [{"x": 1, "x": 2}]}"#,
            r#"{"a": 1} {"b": 2}"#,
            r#"{"a": 1} x"#,
            r#"[1, 2]"#,
            r#""text""#,
            "42",
            "null",
            "   ",
            "",
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": .5}"#,
            r#"{"a": +1}"#,
            r#"{"a": 1e}"#,
            r#"{"a": tru}"#,
            r#"{"a" 1}"#,
            r#"{"a": 1"#,
        ] {
            assert!(!ok(bad), "accepted {bad:?}");
        }
        assert!(
            parse_object(b"{\"a\": \"\xff\"}").is_none(),
            "invalid UTF-8"
        );
        // Invalid UTF-8 anywhere: in a long string (past the word-wise
        // scan), a key, a nested string, after an escape, outside strings.
        for bad in [
            &b"{\"a\": \"abcdefghijklmnop\xc3\"}"[..],
            b"{\"abcdefghij\xff\": 1}",
            b"{\"o\": {\"k\": \"\xed\xa0\x80\"}}",
            b"{\"a\": \"x\\n\xe2\x82\"}",
            b"{\"a\": 1\xc2\xa0}",
        ] {
            assert!(parse_object(bad).is_none(), "accepted {bad:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(!ok(&format!("{{\"a\": {deep}}}")));
    }
}
