//! Read-only view of request headers as Envoy hands them over (lowercase names,
//! every value of a repeated header kept).

#[derive(Debug, Clone, Default)]
pub struct Headers {
    pairs: Vec<(String, String)>,
}

/// The header was sent more than once where exactly one is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated;

impl Headers {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Headers { pairs }
    }

    /// From the host's byte values. A value that is not UTF-8 (obs-text,
    /// legal in HTTP) is kept lossily: it can never match a signature or a
    /// token, and it must not fail the request.
    pub fn from_bytes(pairs: Vec<(String, Vec<u8>)>) -> Self {
        Headers::new(
            pairs
                .into_iter()
                .map(|(k, v)| {
                    (k, String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
                })
                .collect(),
        )
    }

    /// Drops every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.pairs.retain(|(k, _)| k != name);
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Headers::new(pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first value of `name` (lowercase).
    pub fn first(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The value of a header that must appear at most once.
    pub fn single(&self, name: &str) -> Result<Option<&str>, Repeated> {
        let mut found = None;
        for (k, v) in self.iter() {
            if k == name {
                if found.is_some() {
                    return Err(Repeated);
                }
                found = Some(v);
            }
        }
        Ok(found)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|(k, _)| k == name)
    }

    /// SHA-256 over the headers named, as `name:value\n` lines in the order
    /// given (the audit record's `headers_sha256`): a forged or altered header
    /// shows up as a different digest without the header being recorded.
    pub fn sha256_of<S: AsRef<str>>(&self, names: &[S]) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for name in names {
            let name = name.as_ref();
            for (k, v) in self.iter().filter(|(k, _)| *k == name) {
                h.update(k.as_bytes());
                h.update(b":");
                h.update(v.as_bytes());
                h.update(b"\n");
            }
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_changes_with_any_named_header() {
        let a = Headers::from_pairs([("x-sig", "1"), ("x-ts", "2")]);
        let b = Headers::from_pairs([("x-sig", "1"), ("x-ts", "3")]);
        let names = ["x-sig", "x-ts"];
        assert_ne!(a.sha256_of(&names), b.sha256_of(&names));
        assert_eq!(a.sha256_of(&names), a.sha256_of(&names));
        assert_eq!(a.sha256_of(&["x-sig"]), b.sha256_of(&["x-sig"]), "only the named headers count");
    }

    #[test]
    fn single_detects_repeats() {
        let h = Headers::from_pairs([("A", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(h.single("a"), Err(Repeated));
        assert_eq!(h.single("b"), Ok(Some("2")));
        assert_eq!(h.single("c"), Ok(None));
        assert_eq!(h.first("a"), Some("1"));
    }
}
