//! `combo-webhook send`: one delivery signed as its sender would sign it,
//! posted to a deployed edge (or printed as a curl command). The smoke test
//! an operator runs after deploying, like the senders' own CLIs.

use std::process::ExitCode;
use std::time::Duration;

use combo_webhook_filter::rules::scheme::sign::Signed;
use serde_json::Value;

use super::out::outln;

/// What goes on the wire: the URL with the signed query, the headers and the
/// body with the fields the sender puts inside it.
pub struct Delivery {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Delivery {
    pub fn new(url: &str, content_type: &str, signed: Signed, body: Vec<u8>) -> Result<Delivery, String> {
        let mut url = url.to_string();
        if !signed.query.is_empty() {
            let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(&signed.query).finish();
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&query);
        }
        let body = if signed.json.is_empty() { body } else { with_fields(&body, &signed.json)? };
        let mut headers = vec![("content-type".to_string(), content_type.to_string())];
        headers.extend(signed.headers);
        Ok(Delivery { url, headers, body })
    }

    /// The same delivery as a curl command (the body inline, shell-quoted).
    pub fn curl(&self) -> Result<String, String> {
        let body = std::str::from_utf8(&self.body).map_err(|_| "the body is not UTF-8: send it without --curl")?;
        let mut parts = vec!["curl -sS -X POST".to_string(), quote(&self.url)];
        for (name, value) in &self.headers {
            parts.push(format!("-H {}", quote(&format!("{name}: {value}"))));
        }
        parts.push(format!("--data-binary {}", quote(body)));
        Ok(parts.join(" \\\n  "))
    }

    /// Posts it; prints the status and, for a refusal, the filter's error code.
    pub fn post(&self, timeout: Duration) -> Result<ExitCode, String> {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Every answer is reported, a refusal above all.
            .http_status_as_error(false)
            // A redirect is the edge's answer, never followed: following it
            // would send the signed delivery (a token scheme's secret above
            // all) to another host, and report its answer as the edge's.
            .max_redirects(0)
            .build()
            .new_agent();
        let mut request = agent.post(&self.url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let mut response =
            request.send(&self.body[..]).map_err(|e| format!("POST {}: {e}", without_query(&self.url)))?;
        let status = response.status().as_u16();
        // At most 64 KiB of the answer is read: enough for any error body.
        let text = response.body_mut().with_config().limit(64 << 10).read_to_string().unwrap_or_default();
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.pointer("/error/code").and_then(Value::as_str).map(str::to_string));
        match code {
            Some(code) => outln!("{status} {code}"),
            None => outln!("{status}"),
        }
        Ok(if (200..300).contains(&status) { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}

/// The body with `fields` (JSON pointer -> string) set, objects created on the way.
fn with_fields(body: &[u8], fields: &[(String, String)]) -> Result<Vec<u8>, String> {
    let mut doc: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the scheme puts fields in the body, which must be JSON: {e}"))?;
    for (pointer, value) in fields {
        let mut node = &mut doc;
        for part in pointer.trim_start_matches('/').split('/') {
            let part = part.replace("~1", "/").replace("~0", "~");
            node = match node {
                Value::Object(map) => map.entry(part).or_insert(Value::Null),
                Value::Array(items) => {
                    let at: usize = part.parse().map_err(|_| format!("{pointer}: {part} is not an index"))?;
                    items.get_mut(at).ok_or_else(|| format!("{pointer}: no element {at}"))?
                }
                other => {
                    *other = Value::Object(serde_json::Map::new());
                    match other {
                        Value::Object(map) => map.entry(part).or_insert(Value::Null),
                        _ => return Err(format!("{pointer}: cannot be set")),
                    }
                }
            };
        }
        *node = Value::String(value.clone());
    }
    serde_json::to_vec(&doc).map_err(|e| e.to_string())
}

/// The URL without its query, for messages: a scheme may carry its token
/// in the query.
fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(base, _)| base)
}

/// A POSIX shell single-quoted word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_set_where_the_pointer_says_creating_objects() {
        let body = br#"{"event":"x","value":[{"a":1}]}"#;
        let fields =
            [("/signature/token".to_string(), "t".to_string()), ("/value/0/clientState".to_string(), "s".to_string())];
        let out: Value = serde_json::from_slice(&with_fields(body, &fields).unwrap()).unwrap();
        assert_eq!(out["signature"]["token"], "t");
        assert_eq!(out["value"][0]["clientState"], "s");
        assert!(with_fields(b"not json", &fields).is_err());
    }

    #[test]
    fn curl_quotes_what_the_shell_would_split() {
        let d = Delivery {
            url: "https://edge/x?a=1".into(),
            headers: vec![("x-s".into(), "it's".into())],
            body: b"{\"a\":\"b c\"}".to_vec(),
        };
        let cmd = d.curl().unwrap();
        assert!(cmd.contains(r"-H 'x-s: it'\''s'"), "{cmd}");
        assert!(cmd.contains(r#"--data-binary '{"a":"b c"}'"#), "{cmd}");
    }
}
