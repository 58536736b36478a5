//! Providers' URL-verification handshakes, answered at the edge as each
//! provider requires, after whatever verification the provider makes
//! possible. A handshake never reaches the backend.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::keys::Key;
use super::wire::{self, Query};
use super::Encoding;
use crate::contract::error::Reject;
use crate::host::Headers;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handshake {
    /// Slack Events API: signed `{"type":"url_verification","challenge":..}`.
    SlackUrlVerification,
    /// Zoom: signed `endpoint.url_validation`; the answer carries the HMAC of `plainToken`.
    ZoomUrlValidation,
    /// X (Twitter) CRC: `GET ?crc_token=`; the answer is its HMAC.
    XCrc,
    /// Meta: `GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..`.
    MetaHubChallenge,
    /// Dropbox: `GET ?challenge=`.
    DropboxChallenge,
    /// Microsoft Graph: `POST ?validationToken=`, answered as text.
    GraphValidationToken,
    /// Twitch EventSub: signed `webhook_callback_verification`.
    TwitchCallbackVerification,
    /// Okta event hooks: `GET` with `x-okta-verification-challenge`, authenticated.
    OktaVerification,
    /// Discord interactions: a signed PING (`{"type":1}`, and no `event`).
    DiscordPing,
    /// Discord Webhook Events: a signed PING (`{"type":0}`), answered 204.
    DiscordEventPing,
}

/// A handshake answer: `status` with this body (204: none, no content type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u32,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Longest challenge echoed back.
const MAX_CHALLENGE: usize = 1024;

/// A challenge the edge may echo: printable ASCII, bounded (answered as
/// text with `nosniff`, so it can never become markup).
fn challenge(text: &str) -> Result<String, Reject> {
    if text.is_empty() || text.len() > MAX_CHALLENGE || !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Reject::InvalidHandshake);
    }
    Ok(text.to_string())
}

/// A challenge the edge answers with a keyed value (a MAC under the
/// trigger's secret): an opaque token of the base64 and base64url alphabet
/// that never parses as a JSON document. A keyed scheme's deliverable body
/// is a JSON document (`content_types` is JSON only, checked at configure
/// time), so the answer can never be a delivery signature: the edge never
/// computes for anyone a MAC it would accept.
fn keyed_challenge(text: &str) -> Result<String, Reject> {
    let opaque = text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b));
    if !opaque || serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        return Err(Reject::InvalidHandshake);
    }
    challenge(text)
}

fn text(body: String) -> Answer {
    Answer { status: 200, content_type: "text/plain", body: body.into_bytes() }
}

fn json(value: serde_json::Value) -> Answer {
    Answer { status: 200, content_type: "application/json", body: value.to_string().into_bytes() }
}

fn no_content() -> Answer {
    Answer { status: 204, content_type: "", body: Vec::new() }
}

/// HMAC-SHA256 of `data` with an HMAC key (Zoom, X).
fn hmac_sha256(key: &Key, data: &str) -> Result<Vec<u8>, Reject> {
    match &key.material {
        super::KeyMaterial::HmacSha256(_) => {
            key.material.tag(&[data.as_bytes().into()]).ok_or(Reject::InvalidHandshake)
        }
        _ => Err(Reject::InvalidHandshake),
    }
}

impl Handshake {
    pub fn name(self) -> &'static str {
        match self {
            Handshake::SlackUrlVerification => "slack_url_verification",
            Handshake::ZoomUrlValidation => "zoom_url_validation",
            Handshake::XCrc => "x_crc",
            Handshake::MetaHubChallenge => "meta_hub_challenge",
            Handshake::DropboxChallenge => "dropbox_challenge",
            Handshake::GraphValidationToken => "graph_validation_token",
            Handshake::TwitchCallbackVerification => "twitch_callback_verification",
            Handshake::OktaVerification => "okta_verification",
            Handshake::DiscordPing => "discord_ping",
            Handshake::DiscordEventPing => "discord_event_ping",
        }
    }

    /// The method of the handshake request.
    pub fn method(self) -> &'static str {
        match self {
            Handshake::XCrc
            | Handshake::MetaHubChallenge
            | Handshake::DropboxChallenge
            | Handshake::OktaVerification => "GET",
            _ => "POST",
        }
    }

    /// The answer carries a MAC under the trigger's secret (X CRC, Zoom):
    /// its challenge must never be something the scheme would accept as
    /// signed content (`keyed_challenge`, and `compile` checks the scheme).
    pub fn keyed(self) -> bool {
        matches!(self, Handshake::XCrc | Handshake::ZoomUrlValidation)
    }

    /// The handshake needs a `verify_token` on the trigger.
    pub fn needs_verify_token(self) -> bool {
        self == Handshake::MetaHubChallenge
    }

    /// The handshake is authenticated by the scheme's header credentials
    /// (a token) before it is answered.
    pub fn authenticated_in_head(self) -> bool {
        self == Handshake::OktaVerification
    }

    /// Handshakes answered from the request line and headers. `None`: this
    /// request is not the handshake. `signing_key` is the newest valid
    /// secret; `verify_token` the trigger's (Meta).
    pub fn answer_head(
        self,
        headers: &Headers,
        signing_key: Option<&Key>,
        verify_token: Option<&str>,
    ) -> Option<Result<Answer, Reject>> {
        // Every delivery of the trigger comes through here: decide on the
        // method before parsing the query.
        if headers.first(":method").unwrap_or("") != self.method() {
            return None;
        }
        let query = Query::of(headers);
        let param = |name: &str| query.single(name).map_err(|_| Reject::InvalidHandshake);
        let run = || -> Result<Option<Answer>, Reject> {
            Ok(match self {
                Handshake::XCrc => match param("crc_token")? {
                    Some(token) => {
                        let key = signing_key.ok_or(Reject::SignatureMismatch)?;
                        let tag = wire::encode(&hmac_sha256(key, &keyed_challenge(token)?)?, Encoding::Base64);
                        Some(json(serde_json::json!({ "response_token": format!("sha256={tag}") })))
                    }
                    None => None,
                },
                Handshake::MetaHubChallenge => match (param("hub.mode")?, param("hub.challenge")?) {
                    (Some("subscribe"), Some(c)) => {
                        let sent = param("hub.verify_token")?.unwrap_or("");
                        let expected = verify_token.unwrap_or("");
                        let same =
                            sent.len() == expected.len() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()));
                        if expected.is_empty() || !same {
                            return Err(Reject::SignatureMismatch);
                        }
                        Some(text(challenge(c)?))
                    }
                    _ => None,
                },
                Handshake::DropboxChallenge => param("challenge")?.map(challenge).transpose()?.map(text),
                Handshake::GraphValidationToken => param("validationToken")?.map(challenge).transpose()?.map(text),
                Handshake::OktaVerification => match headers.single("x-okta-verification-challenge") {
                    Ok(Some(v)) => Some(json(serde_json::json!({ "verification": challenge(v)? }))),
                    Ok(None) => None,
                    Err(_) => return Err(Reject::InvalidHandshake),
                },
                _ => None,
            })
        };
        run().transpose()
    }

    /// Whether a verified delivery may be this handshake, without parsing
    /// it: every other delivery of the trigger skips a second JSON parse.
    pub fn may_be_in(self, headers: &Headers, body: &[u8]) -> bool {
        let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        match self {
            Handshake::SlackUrlVerification => contains(b"url_verification"),
            Handshake::ZoomUrlValidation => contains(b"endpoint.url_validation"),
            Handshake::TwitchCallbackVerification => {
                headers.first("twitch-eventsub-message-type") == Some("webhook_callback_verification")
            }
            // A PING is `{"type":1,...}` (`{"type":0,...}` for Webhook
            // Events); interactions and events are small.
            Handshake::DiscordPing | Handshake::DiscordEventPing => true,
            _ => false,
        }
    }

    /// Handshakes answered from a verified body; `key` verified it.
    /// `None`: this delivery is not the handshake.
    pub fn answer_body(
        self,
        headers: &Headers,
        payload: Option<&serde_json::Value>,
        key: &Key,
    ) -> Option<Result<Answer, Reject>> {
        let field = |ptr: &str| payload.and_then(|p| p.pointer(ptr)).and_then(|v| v.as_str());
        let kind = || payload.and_then(|p| p.get("type")).and_then(|t| t.as_u64());
        match self {
            Handshake::SlackUrlVerification if field("/type") == Some("url_verification") => Some(
                field("/challenge")
                    .ok_or(Reject::InvalidHandshake)
                    .and_then(challenge)
                    .map(|c| json(serde_json::json!({ "challenge": c }))),
            ),
            Handshake::ZoomUrlValidation if field("/event") == Some("endpoint.url_validation") => Some(
                field("/payload/plainToken").ok_or(Reject::InvalidHandshake).and_then(keyed_challenge).and_then(|t| {
                    let tag = hex::encode(hmac_sha256(key, &t)?);
                    Ok(json(serde_json::json!({ "plainToken": t, "encryptedToken": tag })))
                }),
            ),
            Handshake::TwitchCallbackVerification
                if headers.first("twitch-eventsub-message-type") == Some("webhook_callback_verification") =>
            {
                Some(field("/challenge").ok_or(Reject::InvalidHandshake).and_then(challenge).map(text))
            }
            // A Webhook Event is `{"type":1,"event":{..}}`: a body with an
            // `event` is never answered as an Interactions PING, so an
            // endpoint misconfigured with `discord` forwards its events.
            Handshake::DiscordPing if kind() == Some(1) && payload.and_then(|p| p.get("event")).is_none() => {
                Some(Ok(json(serde_json::json!({ "type": 1 }))))
            }
            Handshake::DiscordEventPing if kind() == Some(0) => Some(Ok(no_content())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_possible_handshakes_are_parsed() {
        let none = Headers::default();
        let twitch = Headers::from_pairs([("twitch-eventsub-message-type", "webhook_callback_verification")]);
        let slack = br#"{"type":"url_verification","challenge":"c"}"#;
        assert!(Handshake::SlackUrlVerification.may_be_in(&none, slack));
        assert!(!Handshake::SlackUrlVerification.may_be_in(&none, br#"{"type":"event_callback"}"#));
        assert!(Handshake::ZoomUrlValidation.may_be_in(&none, br#"{"event":"endpoint.url_validation"}"#));
        assert!(!Handshake::ZoomUrlValidation.may_be_in(&none, br#"{"event":"meeting.started"}"#));
        assert!(Handshake::TwitchCallbackVerification.may_be_in(&twitch, b"{}"));
        assert!(!Handshake::TwitchCallbackVerification.may_be_in(&none, br#"{"challenge":"x"}"#));
        assert!(!Handshake::XCrc.may_be_in(&none, b"{}"), "GET handshakes never come with a body");
    }

    #[test]
    fn challenges_are_bounded_printable_ascii() {
        assert_eq!(challenge("abc 123").as_deref(), Ok("abc 123"));
        for bad in ["", "<\u{1}>", "\u{e9}t\u{e9}"] {
            assert_eq!(challenge(bad), Err(Reject::InvalidHandshake), "{bad:?}");
        }
        assert_eq!(challenge(&"x".repeat(1025)), Err(Reject::InvalidHandshake));
    }

    #[test]
    fn keyed_challenges_are_opaque_tokens_that_are_never_json() {
        for good in ["qgg8vlvZRS6UYooatFL8Aw", "a+b/c==", "x_y-z", "NaN"] {
            assert_eq!(keyed_challenge(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [r#"{"a":1}"#, "[1]", "123", "-1", "1e5", "true", "false", "null", "a b", "v0:1:{}", "a.b", ""] {
            assert_eq!(keyed_challenge(bad), Err(Reject::InvalidHandshake), "{bad}");
        }
    }
}
