//! What a scheme's signature must cover, checked at configure time so that
//! no configuration silently weakens a promise (docs "Signature schemes
//! and presets", "Handshakes"): the body, the timestamp and the id; and
//! a handshake whose answer is a MAC must never answer a delivery signature.

use super::compile::{err, SchemeError};
use super::{Algorithm, Handshake, IdSpec, Location, TimestampAt, TimestampSpec, Token};

/// What the signature covers, checked so that no configuration silently
/// weakens a promise: the body (unless the scheme says `unsigned_body`),
/// the timestamp (an unsigned one would let the sender pick how long a
/// delivery is remembered) and the id (an unsigned one is never trusted,
/// so declaring it only misleads).
pub(super) fn covers(
    algorithm: Algorithm,
    signed: &[Token],
    timestamp: Option<&TimestampSpec>,
    id: Option<&IdSpec>,
    jwt_body_claim: bool,
    unsigned_body: bool,
) -> Result<(), SchemeError> {
    let body = algorithm != Algorithm::Token
        && (signed.iter().any(|t| matches!(t, Token::Body | Token::FormSorted)) || jwt_body_claim);
    let reads = |l: &Location| reads_field(signed, l);
    if !body && !unsigned_body {
        let what = if algorithm == Algorithm::Token { "a token scheme" } else { "signed" };
        return err(
            "signed",
            format!("{what} does not cover the body, so any body would be forwarded; set unsigned_body: true only if the sender signs none (docs \"Presets\")"),
        );
    }
    if let Some(t) = timestamp {
        let in_body = match &t.at {
            TimestampAt::At(l @ Location::Json(_)) => body || reads(l),
            TimestampAt::Claim(_) => signed.contains(&Token::Jwt),
            _ => false,
        };
        if algorithm == Algorithm::Token || !(signed.contains(&Token::Timestamp) || in_body) {
            return err("timestamp", "is not covered by the signature (add {timestamp} to signed): an unsigned timestamp would let the sender pick how long a delivery is remembered");
        }
    }
    if id.is_some_and(|i| !i.signed) {
        return err("id", "is not covered by the signature (add {id} to signed): an unsigned id is never trusted");
    }
    Ok(())
}

/// A body field the signed content reads itself (`{json:/p}`, `{json_lines:..}`).
pub(super) fn reads_field(signed: &[Token], l: &Location) -> bool {
    let Location::Json(p) = l else { return false };
    signed.iter().any(|t| match t {
        Token::Json(q) => q == p,
        Token::JsonLines(fields) => fields.iter().any(|(n, _)| p.strip_prefix('/') == Some(n.as_str())),
        _ => false,
    })
}

/// `{form_sorted}` covers a form body only. A scheme that takes other
/// media types and signs no `{body}` must carry the body's digest in the
/// signed URL (Twilio's JSON webhooks).
pub(super) fn forms_cover(signed: &[Token], content_types: &[String], body_digest: bool) -> Result<(), SchemeError> {
    let only_forms = signed.contains(&Token::FormSorted) && !signed.contains(&Token::Body);
    if only_forms && content_types.iter().any(|t| t != super::form::FORM_MEDIA_TYPE) && !body_digest {
        return err(
            "content_types",
            "a body other than a form is not covered by {form_sorted}: declare body_digest (a signed URL parameter) or take forms only",
        );
    }
    Ok(())
}

/// The handshake fits the scheme's algorithm, and a keyed one can never
/// answer a delivery signature.
pub(super) fn handshake_fits(
    h: Handshake,
    algorithm: Algorithm,
    signed: &[Token],
    content_types: &[String],
) -> Result<(), SchemeError> {
    let ok = match h {
        Handshake::ZoomUrlValidation | Handshake::XCrc => algorithm == Algorithm::HmacSha256,
        Handshake::OktaVerification => algorithm == Algorithm::Token,
        _ => true,
    };
    if !ok {
        return err("handshake", format!("{} does not fit algorithm {}", h.name(), algorithm.name()));
    }
    if h.keyed() {
        keyed_handshake_fits(h, signed, content_types)?;
    }
    Ok(())
}

/// A keyed handshake answers MAC(secret, challenge), where a challenge is an
/// opaque token that never parses as JSON. That MAC must never verify a
/// delivery: the signed content must either start with literal text a
/// challenge cannot contain (Zoom's `v0:`), or be the body alone with JSON
/// the only media type (X), so that a challenge can never be a body.
fn keyed_handshake_fits(h: Handshake, signed: &[Token], content_types: &[String]) -> Result<(), SchemeError> {
    let separated = matches!(signed.first(), Some(Token::Literal(l))
        if l.bytes().any(|b| !(b.is_ascii_alphanumeric() || b"+/=_-".contains(&b))));
    let body_only_json = signed == [Token::Body] && content_types.iter().all(|t| t == "application/json");
    if separated || body_only_json {
        Ok(())
    } else {
        err(
            "handshake",
            format!(
                "{} answers with a MAC under the secret: signed must be {{body}} with content_types [application/json], \
                 or start with literal text such as \"v0:\", so that no answer can be a delivery signature",
                h.name()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile::compile;
    use super::super::raw::RawScheme;

    fn field_of(scheme: serde_json::Value) -> Option<String> {
        let raw: RawScheme = serde_json::from_value(scheme).unwrap();
        compile("custom", raw, 300).err().map(|e| e.field)
    }

    #[test]
    fn the_signature_must_cover_body_timestamp_and_id() {
        let sig = serde_json::json!({"header": "x-s"});
        let with = |extra: serde_json::Value| {
            let mut s = serde_json::json!({"algorithm": "hmac-sha256", "signature": sig});
            s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            field_of(s)
        };
        assert_eq!(with(serde_json::json!({})), None, "{{body}} by default");
        assert_eq!(with(serde_json::json!({"signed": "{method}{path}"})).as_deref(), Some("signed"));
        assert_eq!(with(serde_json::json!({"signed": "{method}", "unsigned_body": true})), None);
        let form = serde_json::json!(["application/x-www-form-urlencoded"]);
        let signed = "{url}{form_sorted}";
        assert_eq!(
            with(serde_json::json!({"signed": signed, "content_types": form})),
            None,
            "a form's fields are its body"
        );
        let json = serde_json::json!(["application/x-www-form-urlencoded", "application/json"]);
        let digest = serde_json::json!({"query": "bodySHA256"});
        assert_eq!(
            with(serde_json::json!({"signed": signed, "content_types": json})).as_deref(),
            Some("content_types"),
            "{{form_sorted}} does not cover JSON"
        );
        assert_eq!(with(serde_json::json!({"signed": signed, "content_types": json, "body_digest": digest})), None);
        assert_eq!(
            with(serde_json::json!({"signed": "{form_sorted}", "content_types": json, "body_digest": digest}))
                .as_deref(),
            Some("body_digest"),
            "the digest must be in the signed URL"
        );
        let ts = serde_json::json!({"header": "x-ts"});
        assert_eq!(with(serde_json::json!({"timestamp": ts})).as_deref(), Some("timestamp"));
        assert_eq!(with(serde_json::json!({"timestamp": ts, "signed": "{timestamp}.{body}"})), None);
        let in_body = serde_json::json!({"json": "/ts"});
        assert_eq!(with(serde_json::json!({"timestamp": in_body})), None, "inside the signed body");
        assert_eq!(with(serde_json::json!({"id": {"header": "x-id"}})).as_deref(), Some("id"));
        assert_eq!(with(serde_json::json!({"id": {"header": "x-id"}, "signed": "{id}.{body}"})), None);
        let token = serde_json::json!({"algorithm": "token", "signature": sig});
        assert_eq!(field_of(token.clone()).as_deref(), Some("signed"), "a token covers no body");
        let mut explicit = token;
        explicit["unsigned_body"] = true.into();
        assert_eq!(field_of(explicit), None);
    }

    #[test]
    fn a_keyed_handshake_can_never_answer_a_delivery_signature() {
        let x = |signed: &str, types: serde_json::Value| {
            field_of(serde_json::json!({"algorithm": "hmac-sha256", "signature": {"header": "x-s"},
                "signed": signed, "content_types": types, "handshake": "x_crc", "unsigned_body": true}))
        };
        let json = serde_json::json!(["application/json"]);
        assert_eq!(x("{body}", json.clone()), None);
        assert_eq!(x("v0:{body}", json.clone()), None, "a literal a token cannot hold");
        assert_eq!(x("{body}", serde_json::json!(["application/x-www-form-urlencoded"])).as_deref(), Some("handshake"));
        assert_eq!(x("abc{body}", json.clone()).as_deref(), Some("handshake"), "a token can start with abc");
        assert_eq!(x("{method}{body}", json).as_deref(), Some("handshake"));
    }
}
