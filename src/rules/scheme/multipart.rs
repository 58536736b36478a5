//! multipart/form-data deliveries (RFC 7578) for schemes that take them:
//! verified on the wire bytes like every body; then `match` and `inputs`
//! see the text fields as a JSON object, and each file as its name, type,
//! size and SHA-256, never its bytes (docs "Multipart deliveries").
//!
//! Our own parser rather than a crate's: `multer` is async (tokio streams),
//! `multipart` has been unmaintained since 2021 (and pulls unmaintained
//! buffering crates). A verified body is already whole in memory, so a slice
//! parser over `memchr::memmem` (already in the .wasm through serde_json and
//! regex) is enough. Part headers are read here too: `httparse` would add a
//! crate to the .wasm for a few lines, and Content-Disposition's parameters
//! need reading anyway.

use memchr::memmem::{self, Finder};
use sha2::{Digest, Sha256};

use super::form::{insert_field, media_type, MAX_FORM_FIELDS};
use crate::contract::error::Reject;
use crate::host::Headers;

pub const MULTIPART_MEDIA_TYPE: &str = "multipart/form-data";

/// Most bytes of one part's header block (browsers send a few hundred).
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;

/// Longest text field seen as a string; a longer one is summarised like a
/// file (name, type, size, digest), so that no JSON tree copies it.
pub const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;

/// RFC 2046: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// Why a multipart body cannot be read. Each has a stable code (logs,
/// tests); the answer is `invalid_multipart`, or `too_many_fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipartError {
    /// The content-type has no valid `boundary=` parameter.
    Boundary,
    /// No delimiter line opens a first part.
    NoDelimiter,
    /// A part is not followed by a delimiter: no closing `--boundary--`.
    Unclosed,
    /// A delimiter is followed by something other than padding and CRLF.
    Delimiter,
    /// A part's header block is over `MAX_PART_HEADER_BYTES`.
    HeadersTooLarge,
    /// A part header is not `name: value` in UTF-8, is folded, or a
    /// Content-Disposition or Content-Type is repeated.
    Header,
    /// A part without a `form-data` Content-Disposition that names it.
    Disposition,
    /// More than `MAX_FORM_FIELDS` parts.
    TooManyParts,
}

impl MultipartError {
    pub fn code(self) -> &'static str {
        match self {
            MultipartError::Boundary => "boundary",
            MultipartError::NoDelimiter => "no_delimiter",
            MultipartError::Unclosed => "unclosed",
            MultipartError::Delimiter => "delimiter",
            MultipartError::HeadersTooLarge => "headers_too_large",
            MultipartError::Header => "header",
            MultipartError::Disposition => "disposition",
            MultipartError::TooManyParts => "too_many_parts",
        }
    }

    /// The answer: too many parts is the forms' 413, anything else 400.
    pub fn reject(self) -> Reject {
        match self {
            MultipartError::TooManyParts => Reject::TooManyFields,
            _ => Reject::InvalidMultipart,
        }
    }
}

/// Whether the request says its body is multipart/form-data.
pub fn is_multipart(headers: &Headers) -> bool {
    headers.first("content-type").map(media_type).as_deref() == Some(MULTIPART_MEDIA_TYPE)
}

/// The `boundary=` parameter of a content-type, quoted or not.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let params = content_type.split_once(';').map_or("", |(_, p)| p);
    let mut found = None;
    for (name, value) in parameters(params).ok_or(MultipartError::Boundary)? {
        if name == "boundary" {
            if found.is_some() {
                return Err(MultipartError::Boundary);
            }
            found = Some(value);
        }
    }
    found.filter(|b| valid_boundary(b)).ok_or(MultipartError::Boundary)
}

/// RFC 2046's `bchars`, 1 to 70 of them, not ending in a space.
fn valid_boundary(b: &str) -> bool {
    let allowed = |c: u8| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c);
    (1..=MAX_BOUNDARY).contains(&b.len()) && b.bytes().all(allowed) && !b.ends_with(' ')
}

/// Whether the body has at most `MAX_FORM_FIELDS` parts: one pass over the
/// bytes, nothing allocated but the delimiter, before the signature is
/// checked (like forms). Without a valid boundary there is nothing to
/// count: the body is refused once its signature holds.
pub fn parts_within_bound(content_type: &str, body: &[u8]) -> bool {
    let Ok(b) = boundary(content_type) else { return true };
    let delimiter = format!("\r\n--{b}");
    let first = usize::from(body.starts_with(&delimiter.as_bytes()[2..]));
    // N parts take N + 1 delimiters, the closing one included.
    let rest = memmem::find_iter(body, delimiter.as_bytes()).take(MAX_FORM_FIELDS + 2).count();
    first + rest <= MAX_FORM_FIELDS + 1
}

/// The fields as a JSON object: a text field sent once is a string, a
/// repeated field an array of its values in order, a file part
/// `{"filename", "content_type", "size", "sha256"}`. The preamble and the
/// epilogue are ignored.
pub fn to_json(content_type: &str, body: &[u8]) -> Result<serde_json::Value, MultipartError> {
    let b = boundary(content_type)?;
    let delimiter = format!("\r\n--{b}");
    let finder = Finder::new(delimiter.as_bytes());
    // The first delimiter opens the body, or ends a preamble.
    let mut pos = if body.starts_with(&delimiter.as_bytes()[2..]) {
        delimiter.len() - 2
    } else {
        finder.find(body).ok_or(MultipartError::NoDelimiter)? + delimiter.len()
    };
    let mut map = serde_json::Map::new();
    let mut parts = 0;
    loop {
        let rest = body.get(pos..).unwrap_or_default();
        if rest.starts_with(b"--") {
            return Ok(serde_json::Value::Object(map));
        }
        let start = pos + after_delimiter_line(rest)?;
        parts += 1;
        if parts > MAX_FORM_FIELDS {
            return Err(MultipartError::TooManyParts);
        }
        let part = body.get(start..).unwrap_or_default();
        let end = finder.find(part).ok_or(MultipartError::Unclosed)?;
        let (name, value) = read_part(&part[..end])?;
        insert_field(&mut map, name, value);
        pos = start + end + delimiter.len();
    }
}

/// Where the part starts after a delimiter: past RFC 2046's transport
/// padding (spaces and tabs) and the CRLF that ends the line.
fn after_delimiter_line(rest: &[u8]) -> Result<usize, MultipartError> {
    let padding = rest.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    match &rest[padding..] {
        [] => Err(MultipartError::Unclosed),
        [b'\r', b'\n', ..] => Ok(padding + 2),
        _ => Err(MultipartError::Delimiter),
    }
}

/// One part: its name, and its value as `match` and `inputs` see it.
fn read_part(part: &[u8]) -> Result<(String, serde_json::Value), MultipartError> {
    let (head, content) = match part.strip_prefix(b"\r\n") {
        Some(content) => (&b""[..], content),
        None => {
            // The search stops at the bound: an oversized block is never scanned in full.
            let window = &part[..part.len().min(MAX_PART_HEADER_BYTES + 4)];
            match memmem::find(window, b"\r\n\r\n") {
                Some(end) => (&part[..end], &part[end + 4..]),
                None if part.len() >= MAX_PART_HEADER_BYTES + 4 => return Err(MultipartError::HeadersTooLarge),
                None => return Err(MultipartError::Header),
            }
        }
    };
    let head = PartHead::read(head)?;
    let disposition = head.disposition.ok_or(MultipartError::Disposition)?;
    let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(MultipartError::Disposition);
    }
    let params = parameters(params).ok_or(MultipartError::Disposition)?;
    let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let name = param("name").ok_or(MultipartError::Disposition)?;
    // `filename*` (RFC 5987) is kept as sent: RFC 7578 asks senders not to use it.
    let filename = param("filename").or_else(|| param("filename*"));
    let value = if filename.is_some() || content.len() > MAX_TEXT_FIELD_BYTES {
        serde_json::json!({
            "filename": filename,
            "content_type": head.content_type,
            "size": content.len(),
            "sha256": hex::encode(Sha256::digest(content)),
        })
    } else {
        // Like forms: text is UTF-8, an invalid sequence replaced.
        serde_json::Value::String(String::from_utf8_lossy(content).into_owned())
    };
    Ok((name, value))
}

/// The part headers this reads; any other is ignored (RFC 7578 allows
/// only these and Content-Transfer-Encoding, which senders no longer use).
struct PartHead<'a> {
    disposition: Option<&'a str>,
    content_type: Option<&'a str>,
}

impl<'a> PartHead<'a> {
    fn read(head: &'a [u8]) -> Result<Self, MultipartError> {
        let text = std::str::from_utf8(head).map_err(|_| MultipartError::Header)?;
        let mut out = PartHead { disposition: None, content_type: None };
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            // Folded lines (obsolete) and bare CR or LF are refused.
            if line.starts_with([' ', '\t']) || line.contains(['\r', '\n']) {
                return Err(MultipartError::Header);
            }
            let (name, value) = line.split_once(':').ok_or(MultipartError::Header)?;
            if name.is_empty() || !name.bytes().all(is_token) {
                return Err(MultipartError::Header);
            }
            let slot = if name.eq_ignore_ascii_case("content-disposition") {
                &mut out.disposition
            } else if name.eq_ignore_ascii_case("content-type") {
                &mut out.content_type
            } else {
                continue;
            };
            if slot.replace(value.trim_matches([' ', '\t'])).is_some() {
                return Err(MultipartError::Header);
            }
        }
        Ok(out)
    }
}

/// An RFC 9110 token character.
fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `; name=value` parameters (names lowercase; values a token or a quoted
/// string with `\` escapes, RFC 9110); `None` when malformed. Empty `;;`
/// are skipped.
fn parameters(mut rest: &str) -> Option<Vec<(String, String)>> {
    const OWS: [char; 2] = [' ', '\t'];
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start_matches(OWS);
        if let Some(r) = rest.strip_prefix(';') {
            rest = r;
            continue;
        }
        if rest.is_empty() {
            return Some(out);
        }
        let (name, value) = rest.split_once('=')?;
        let name = name.trim_end_matches(OWS);
        if name.is_empty() || !name.bytes().all(is_token) {
            return None;
        }
        let value = value.trim_start_matches(OWS);
        let (value, after) = match value.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?,
            None => {
                let end = value.find(|c: char| !c.is_ascii() || !is_token(c as u8)).unwrap_or(value.len());
                (value[..end].to_string(), &value[end..])
            }
        };
        rest = after.trim_start_matches(OWS);
        if !rest.is_empty() && !rest.starts_with(';') {
            return None;
        }
        out.push((name.to_ascii_lowercase(), value));
    }
}

/// A quoted string's value (after its opening quote) and what follows its
/// closing quote; `None` when it never closes.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests;
