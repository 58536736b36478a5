//! Stable error codes (docs "Error codes").

use std::fmt;

/// Why a request was answered at the edge instead of being forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    NonCanonicalPath,
    MethodNotAllowed,
    IpNotAllowed,
    UnknownTrigger,
    MtlsRequired,
    PeerNotAllowed,
    UnsupportedMediaType,
    PayloadTooLarge,
    /// A form body with more than `MAX_FORM_FIELDS` fields.
    TooManyFields,
    MissingSignature,
    MissingTimestamp,
    MalformedSignature,
    MalformedTimestamp,
    TimestampOutOfTolerance,
    SignatureMismatch,
    /// The key the sender publishes is at a URL outside the scheme's pinned
    /// hosts (or not https): never fetched.
    UntrustedKeyUrl,
    /// The key the sender publishes could not be fetched (an error, a
    /// timeout, a redirect, an answer that holds no usable key) or the
    /// fetch budget is spent: fail closed, the sender retries.
    KeyUnavailable,
    /// The signed sender (an SNS topic) is not one the trigger accepts.
    SenderNotAllowed,
    InvalidJson,
    /// A verified multipart/form-data body that cannot be read: no valid
    /// boundary, a malformed delimiter or part, or part headers over 8 KiB.
    InvalidMultipart,
    /// A provider's handshake whose challenge cannot be answered (absent,
    /// over 1024 bytes, or not printable ASCII).
    InvalidHandshake,
    /// The rendered inputs exceed `max_inputs_bytes`.
    InputsTooLarge,
    /// A required input rendered null or absent.
    MissingInput,
    /// An input does not hold its declared type.
    InvalidInput,
    /// The replay store kept refusing: fail closed, the sender retries.
    ReplayStoreUnavailable,
    UnknownSubscription,
    /// Outbound: the event name is not a token of at most 128 characters.
    InvalidEvent,
    /// Outbound: neither `x-combo-event` nor `event_jsonpath` names the event.
    MissingEvent,
    /// Outbound: the subscription has no secret valid now, so nothing can be signed.
    NoSigningKey,
    /// The proxy refused a call the filter needs (read the body, set a header):
    /// the request is refused rather than forwarded half-checked.
    HostError,
}

impl Reject {
    pub const ALL: [Reject; 30] = [
        Reject::NonCanonicalPath,
        Reject::MethodNotAllowed,
        Reject::IpNotAllowed,
        Reject::UnknownTrigger,
        Reject::MtlsRequired,
        Reject::PeerNotAllowed,
        Reject::UnsupportedMediaType,
        Reject::PayloadTooLarge,
        Reject::TooManyFields,
        Reject::MissingSignature,
        Reject::MissingTimestamp,
        Reject::MalformedSignature,
        Reject::MalformedTimestamp,
        Reject::TimestampOutOfTolerance,
        Reject::SignatureMismatch,
        Reject::UntrustedKeyUrl,
        Reject::KeyUnavailable,
        Reject::SenderNotAllowed,
        Reject::InvalidJson,
        Reject::InvalidMultipart,
        Reject::InvalidHandshake,
        Reject::InputsTooLarge,
        Reject::MissingInput,
        Reject::InvalidInput,
        Reject::ReplayStoreUnavailable,
        Reject::UnknownSubscription,
        Reject::InvalidEvent,
        Reject::MissingEvent,
        Reject::NoSigningKey,
        Reject::HostError,
    ];

    pub fn status(self) -> u32 {
        match self {
            Reject::MethodNotAllowed => 405,
            Reject::IpNotAllowed | Reject::MtlsRequired | Reject::PeerNotAllowed | Reject::SenderNotAllowed => 403,
            Reject::UnknownTrigger | Reject::UnknownSubscription => 404,
            Reject::UnsupportedMediaType => 415,
            Reject::PayloadTooLarge | Reject::TooManyFields | Reject::InputsTooLarge => 413,
            Reject::MissingSignature
            | Reject::MissingTimestamp
            | Reject::MalformedSignature
            | Reject::MalformedTimestamp
            | Reject::TimestampOutOfTolerance
            | Reject::SignatureMismatch
            | Reject::UntrustedKeyUrl
            | Reject::KeyUnavailable => 401,
            Reject::NonCanonicalPath
            | Reject::InvalidJson
            | Reject::InvalidMultipart
            | Reject::InvalidHandshake
            | Reject::MissingEvent
            | Reject::InvalidEvent => 400,
            Reject::MissingInput | Reject::InvalidInput => 422,
            Reject::NoSigningKey | Reject::HostError => 500,
            Reject::ReplayStoreUnavailable => 503,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Reject::NonCanonicalPath => "non_canonical_path",
            Reject::MethodNotAllowed => "method_not_allowed",
            Reject::IpNotAllowed => "ip_not_allowed",
            Reject::UnknownTrigger => "unknown_trigger",
            Reject::MtlsRequired => "mtls_required",
            Reject::PeerNotAllowed => "peer_not_allowed",
            Reject::UnsupportedMediaType => "unsupported_media_type",
            Reject::PayloadTooLarge => "payload_too_large",
            Reject::TooManyFields => "too_many_fields",
            Reject::MissingSignature => "missing_signature",
            Reject::MissingTimestamp => "missing_timestamp",
            Reject::MalformedSignature => "malformed_signature",
            Reject::MalformedTimestamp => "malformed_timestamp",
            Reject::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Reject::SignatureMismatch => "signature_mismatch",
            Reject::UntrustedKeyUrl => "untrusted_key_url",
            Reject::KeyUnavailable => "key_unavailable",
            Reject::SenderNotAllowed => "sender_not_allowed",
            Reject::InvalidJson => "invalid_json",
            Reject::InvalidMultipart => "invalid_multipart",
            Reject::InvalidHandshake => "invalid_handshake",
            Reject::InputsTooLarge => "inputs_too_large",
            Reject::MissingInput => "missing_input",
            Reject::InvalidInput => "invalid_input",
            Reject::ReplayStoreUnavailable => "replay_store_unavailable",
            Reject::InvalidEvent => "invalid_event",
            Reject::UnknownSubscription => "unknown_subscription",
            Reject::MissingEvent => "missing_event",
            Reject::NoSigningKey => "no_signing_key",
            Reject::HostError => "host_error",
        }
    }

    /// A fixed, human-readable message. Fixed on purpose: it can never carry a
    /// secret, an expected signature or the signed string.
    pub fn message(self) -> &'static str {
        match self {
            Reject::NonCanonicalPath => "the request path is not in canonical form",
            Reject::MethodNotAllowed => "only POST is accepted",
            Reject::IpNotAllowed => "source address is not allowed",
            Reject::UnknownTrigger => "no such trigger",
            Reject::MtlsRequired => "a verified client certificate is required",
            Reject::PeerNotAllowed => "client certificate is not allowed for this trigger",
            Reject::UnsupportedMediaType => "content-type is not one the trigger's scheme accepts",
            Reject::PayloadTooLarge => "request body exceeds max_body_bytes",
            Reject::TooManyFields => "the form has more than 1000 fields",
            Reject::MissingSignature => "the signature is missing",
            Reject::MissingTimestamp => "the timestamp is missing",
            Reject::MalformedSignature => "the signature is malformed or repeated",
            Reject::MalformedTimestamp => "the timestamp is malformed or repeated",
            Reject::TimestampOutOfTolerance => "timestamp is outside the allowed tolerance",
            Reject::SignatureMismatch => "signature does not match",
            Reject::UntrustedKeyUrl => "the signing key's URL is not one the scheme trusts",
            Reject::KeyUnavailable => "the sender's signing key could not be fetched; retry later",
            Reject::SenderNotAllowed => "the signed sender is not one the trigger accepts",
            Reject::InvalidJson => "request body is not a JSON document",
            Reject::InvalidMultipart => "the multipart body is malformed or a part's headers exceed 8 KiB",
            Reject::InvalidHandshake => "the handshake's challenge is absent, over 1024 bytes or not printable ASCII",
            Reject::InputsTooLarge => "the rendered inputs exceed max_inputs_bytes",
            Reject::MissingInput => "a required input is missing",
            Reject::InvalidInput => "an input does not hold its declared type",
            Reject::ReplayStoreUnavailable => "the replay store is unavailable; retry later",
            Reject::InvalidEvent => "the event name must be an HTTP token of at most 128 characters",
            Reject::UnknownSubscription => "no such subscription",
            Reject::MissingEvent => "the event name is missing (x-combo-event or event_jsonpath)",
            Reject::NoSigningKey => "the subscription has no secret valid now",
            Reject::HostError => "the proxy refused an operation the filter needs",
        }
    }

    /// The JSON error body.
    pub fn body(self) -> String {
        serde_json::json!({"error": {"code": self.code(), "message": self.message()}}).to_string()
    }

    /// The JSON error body with the name of the input it is about (an
    /// operator-chosen name from the configuration, never a payload value).
    pub fn body_for_input(self, input: &str) -> String {
        let message = format!("{}: {input}", self.message());
        serde_json::json!({"error": {"code": self.code(), "message": message, "input": input}}).to_string()
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A configuration error, always naming the field path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_bodies_are_json() {
        let mut seen = std::collections::HashSet::new();
        for r in Reject::ALL {
            assert!(seen.insert(r.code()), "duplicate code {}", r.code());
            let v: serde_json::Value = serde_json::from_str(&r.body()).unwrap();
            assert_eq!(v["error"]["code"], r.code());
            assert!((400..=503).contains(&r.status()));
        }
    }

    #[test]
    fn config_error_names_its_field() {
        let e = ConfigError::new("triggers[1].allow_cidrs[0]", "invalid CIDR \"10.0.0.0/33\"");
        assert_eq!(e.to_string(), "triggers[1].allow_cidrs[0]: invalid CIDR \"10.0.0.0/33\"");
    }
}
