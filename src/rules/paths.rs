//! Canonical request paths. The filter decides whether a request is a webhook
//! on the canonical form, so no spelling of a webhook path (`//`, `/./`,
//! `/../`, `%2F`, `%2e`, an absolute-form target, `\`, `;params`, another
//! case) slips past it unverified. Canonical means as the most lenient
//! backend behind the edge reads it: Tomcat and Spring drop `;` path
//! parameters, Windows-hosted servers take `\` for `/`, Express and ASP.NET
//! route case-insensitively.

/// What a raw `:path` canonicalises to.
#[derive(Debug, PartialEq, Eq)]
pub struct CanonicalPath {
    pub path: String,
    /// Whether the raw path (query excluded) was already canonical.
    pub was_canonical: bool,
    /// False when the path is still changing after `MAX_DECODES` rounds of
    /// decoding (an encoding bomb): no one can say where it points.
    pub converged: bool,
}

/// Rounds of percent-decoding before a path is declared undecidable.
const MAX_DECODES: usize = 8;

/// Percent-decodes every escape (including `%2F` and `%3B`), reduces an
/// absolute-form target to its path, reads `\` as `/`, drops `;` path
/// parameters from every segment, merges slashes and removes `.` and `..`
/// segments (RFC 3986 5.2.4). The query and fragment are not part of the
/// path. Case is kept: `under_prefix` folds it.
pub fn canonicalize(raw: &str) -> CanonicalPath {
    let without_query = raw.split(['?', '#']).next().unwrap_or("");
    let target = strip_authority(without_query);
    let (decoded, converged) = decode_fully(target);
    let decoded = decoded.replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        // `..;x` is `..` to Tomcat: parameters go before dot segments.
        let seg = seg.split(';').next().unwrap_or("");
        // Windows drops a segment's trailing dots and spaces (`generic.`).
        let seg = if seg == "." || seg == ".." { seg } else { seg.trim_end_matches(['.', ' ', '\t']) };
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        path.push('/');
        path.push_str(s);
    }
    if path.is_empty()
        || (decoded.ends_with('/') && !segments.is_empty())
        || decoded.ends_with("/.")
        || decoded.ends_with("/..")
    {
        path.push('/');
    }
    let was_canonical = without_query == path;
    CanonicalPath { path, was_canonical, converged }
}

/// The rest of `path` after `prefix`, where `path` starts with `prefix` in
/// any ASCII case (a case-insensitive backend routes it there), and whether
/// it starts with `prefix` exactly.
pub fn under_prefix<'a>(path: &'a str, prefix: &str) -> Option<(&'a str, bool)> {
    let n = prefix.len();
    let head = path.as_bytes().get(..n)?;
    if !head.eq_ignore_ascii_case(prefix.as_bytes()) || !path.is_char_boundary(n) {
        return None;
    }
    Some((&path[n..], head == prefix.as_bytes()))
}

/// `http://host/p` → `/p`; a target without a scheme is returned as is.
fn strip_authority(target: &str) -> &str {
    let Some(colon) = target.find("://") else { return target };
    if target[..colon].bytes().any(|b| !b.is_ascii_alphanumeric() && !b"+-.".contains(&b)) || target.starts_with('/') {
        return target;
    }
    let rest = &target[colon + 3..];
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// Decodes until nothing changes (bounded), so a double-encoded path
/// (`%252F`) is judged by what a backend that decodes twice would see. A
/// decoded `?` or `#` stays part of the path. False: it did not converge.
fn decode_fully(text: &str) -> (String, bool) {
    let mut current = text.to_string();
    for _ in 0..MAX_DECODES {
        let next = percent_decode(&current);
        if next == current {
            return (current, true);
        }
        current = next;
    }
    (current, false)
}

/// Decodes `%XX` escapes, and IIS's `%uXXXX`; an invalid escape stays as
/// written. Bytes that do not form UTF-8 are kept lossily (the result only
/// ever decides routing).
pub(crate) fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && matches!(bytes.get(i + 1), Some(b'u' | b'U')) {
            let code = bytes.get(i + 2..i + 6).and_then(|h| h.iter().try_fold(0u32, |n, &b| Some(n * 16 + hex(b)?)));
            if let Some(c) = code.and_then(char::from_u32) {
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                i += 6;
                continue;
            }
        }
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a configured `path_prefix` is itself canonical (it is matched
/// against canonical paths).
pub fn is_canonical_prefix(prefix: &str) -> bool {
    prefix.starts_with('/') && !prefix.contains(['?', '#', '%']) && {
        let c = canonicalize(prefix);
        c.was_canonical || c.path == format!("{prefix}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> (String, bool) {
        let c = canonicalize(raw);
        (c.path, c.was_canonical)
    }

    #[test]
    fn canonical_paths_stay() {
        assert_eq!(canon("/v1/webhook/generic/t1"), ("/v1/webhook/generic/t1".into(), true));
        assert_eq!(canon("/v1/webhook/generic/t1?x=1"), ("/v1/webhook/generic/t1".into(), true));
        assert_eq!(canon("/"), ("/".into(), true));
        assert_eq!(canon("/a/"), ("/a/".into(), true));
    }

    #[test]
    fn every_trick_is_reduced_and_flagged() {
        for raw in [
            "//v1/webhook/generic/t1",
            "/v1/webhook//generic/t1",
            "/v1/./webhook/generic/t1",
            "/v1/x/../webhook/generic/t1",
            "/v1/webhook%2Fgeneric/t1",
            "/v1/webhook%2fgeneric/t1",
            "/v1/%2e/webhook/generic/t1",
            "/v1/webhook/generic/%74%31",
            "/v1/webhook%252Fgeneric/t1",
            "/v1/webhook%25252fgeneric/t1",
            "http://evil.example/v1/webhook/generic/t1",
            "https://h:443/v1/webhook/generic/t1?q",
            "/v1/webhook/generic;jsessionid=x/t1",
            "/v1;x=1/webhook/generic/t1",
            "/v1/webhook/generic%3Bx/t1",
            "/v1/webhook/generic/t1;a=b",
            "/v1\\webhook\\generic\\t1",
            "/v1/webhook%5Cgeneric/t1",
            "/v1/x/..;y/webhook/generic/t1",
            "/v1/webhook/generic./t1",
            "/v1/webhook/generic%20/t1",
            "/v1/webhook/generic%09/t1",
            "/v1/webhook/generic%u002ft1",
            "/v1/webhook/generic/t1...",
        ] {
            assert_eq!(canon(raw), ("/v1/webhook/generic/t1".into(), false), "{raw}");
        }
    }

    #[test]
    fn case_is_folded_only_to_find_the_prefix() {
        let p = "/v1/webhook/generic/";
        assert_eq!(under_prefix("/v1/webhook/generic/t1", p), Some(("t1", true)));
        assert_eq!(under_prefix("/V1/WEBHOOK/GENERIC/T1", p), Some(("T1", false)));
        assert_eq!(under_prefix("/v1/Webhook/generic/t", p), Some(("t", false)));
        assert_eq!(under_prefix("/v2/webhook/generic/t", p), None);
        assert_eq!(under_prefix("/v1", p), None);
        assert_eq!(under_prefix("/v1/webhook/generi\u{e9}", "/v1/webhook/generic"), None);
    }

    #[test]
    fn odd_input_never_panics() {
        for raw in ["", "%", "%4", "%zz/..", "/../../..", "://", "a://", "/%ff%fe", "/.", "/..", "./%ff%3f"] {
            let c = canonicalize(raw);
            assert!(c.path.starts_with('/'), "{raw}");
        }
    }

    #[test]
    fn an_encoding_bomb_does_not_converge() {
        let bomb = "/%3%%3%33%%3%3%3%3%3%3%%33441.A";
        let c = canonicalize(bomb);
        assert!(!c.converged && !c.was_canonical);
        assert!(canonicalize("/a%2520b").converged);
    }

    #[test]
    fn prefixes() {
        assert!(is_canonical_prefix("/v1/webhook/generic/"));
        assert!(is_canonical_prefix("/v1/webhook/generic"));
        assert!(!is_canonical_prefix("/v1//webhook/"));
        assert!(!is_canonical_prefix("/v1/%2e/"));
        assert!(!is_canonical_prefix("v1/"));
    }
}
