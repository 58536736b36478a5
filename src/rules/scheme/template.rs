//! The signed-content template: `{body}`, `{timestamp}`, ... with literal
//! text between them, parsed once at configure time into tokens.

use super::compile::{err, header_name, SchemeError};
use super::Token;

/// `{body}`, `{timestamp}`, ... with literal text between them.
pub(super) fn template(text: &str) -> Result<Vec<Token>, SchemeError> {
    if text.is_empty() || text.len() > 1024 {
        return err("signed", "must be 1 to 1024 characters");
    }
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Token::Literal(rest[..open].to_string()));
        }
        let Some(close) = rest[open..].find('}') else { return err("signed", "has an unclosed '{'") };
        let name = &rest[open + 1..open + close];
        out.push(match name {
            "body" => Token::Body,
            "timestamp" => Token::Timestamp,
            "id" => Token::Id,
            "method" => Token::Method,
            "url" => Token::Url,
            "path" => Token::Path,
            "form_sorted" => Token::FormSorted,
            "body_crc32" => Token::BodyCrc32,
            "jwt" => Token::Jwt,
            _ => match name.split_once(':') {
                Some(("header", h)) => Token::Header(header_name("signed", h)?),
                Some(("json", p)) if p.starts_with('/') && !super::claims::each(p) => Token::Json(p.to_string()),
                Some(("param", n)) if !n.is_empty() => Token::Param(n.to_string()),
                Some(("json_lines", list)) => Token::JsonLines(json_lines(list)?),
                _ => {
                    return err(
                        "signed",
                        format!("unknown token {{{name}}}; expected body, timestamp, id, method, url, path, header:NAME, form_sorted, json:/pointer, json_lines:A,B?, param:NAME, body_crc32 or jwt"),
                    )
                }
            },
        });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push(Token::Literal(rest.to_string()));
    }
    if out.iter().filter(|t| **t == Token::Body).count() > 1 {
        return err("signed", "may use {body} once");
    }
    Ok(out)
}

/// `Message,Subject?,...`: top-level field names, `?` for optional ones.
fn json_lines(list: &str) -> Result<Vec<(String, bool)>, SchemeError> {
    let fields: Vec<(String, bool)> = list
        .split(',')
        .map(|f| match f.strip_suffix('?') {
            Some(name) => (name.to_string(), true),
            None => (f.to_string(), false),
        })
        .collect();
    if fields.is_empty() || fields.len() > 16 || fields.iter().any(|(n, _)| n.is_empty() || n.contains(['/', '~'])) {
        return err("signed", "json_lines lists 1 to 16 top-level field names");
    }
    Ok(fields)
}
