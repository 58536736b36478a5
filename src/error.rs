//! Stable error codes (SPEC.md "Inbound: order of checks and answers").

use std::fmt;

/// Why a request was answered at the edge instead of being forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    MethodNotAllowed,
    IpNotAllowed,
    UnknownTrigger,
    MtlsRequired,
    PeerNotAllowed,
    UnsupportedMediaType,
    PayloadTooLarge,
    MissingSignature,
    MissingTimestamp,
    MalformedSignature,
    MalformedTimestamp,
    TimestampOutOfTolerance,
    SignatureMismatch,
    InvalidJson,
    UnknownSubscription,
    /// Outbound: neither `x-combo-event` nor `event_jsonpath` names the event.
    MissingEvent,
    /// Outbound: the subscription has no secret valid now, so nothing can be signed.
    NoSigningKey,
}

impl Reject {
    pub const ALL: [Reject; 17] = [
        Reject::MethodNotAllowed,
        Reject::IpNotAllowed,
        Reject::UnknownTrigger,
        Reject::MtlsRequired,
        Reject::PeerNotAllowed,
        Reject::UnsupportedMediaType,
        Reject::PayloadTooLarge,
        Reject::MissingSignature,
        Reject::MissingTimestamp,
        Reject::MalformedSignature,
        Reject::MalformedTimestamp,
        Reject::TimestampOutOfTolerance,
        Reject::SignatureMismatch,
        Reject::InvalidJson,
        Reject::UnknownSubscription,
        Reject::MissingEvent,
        Reject::NoSigningKey,
    ];

    pub fn status(self) -> u32 {
        match self {
            Reject::MethodNotAllowed => 405,
            Reject::IpNotAllowed | Reject::MtlsRequired | Reject::PeerNotAllowed => 403,
            Reject::UnknownTrigger | Reject::UnknownSubscription => 404,
            Reject::UnsupportedMediaType => 415,
            Reject::PayloadTooLarge => 413,
            Reject::MissingSignature
            | Reject::MissingTimestamp
            | Reject::MalformedSignature
            | Reject::MalformedTimestamp
            | Reject::TimestampOutOfTolerance
            | Reject::SignatureMismatch => 401,
            Reject::InvalidJson | Reject::MissingEvent => 400,
            Reject::NoSigningKey => 500,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Reject::MethodNotAllowed => "method_not_allowed",
            Reject::IpNotAllowed => "ip_not_allowed",
            Reject::UnknownTrigger => "unknown_trigger",
            Reject::MtlsRequired => "mtls_required",
            Reject::PeerNotAllowed => "peer_not_allowed",
            Reject::UnsupportedMediaType => "unsupported_media_type",
            Reject::PayloadTooLarge => "payload_too_large",
            Reject::MissingSignature => "missing_signature",
            Reject::MissingTimestamp => "missing_timestamp",
            Reject::MalformedSignature => "malformed_signature",
            Reject::MalformedTimestamp => "malformed_timestamp",
            Reject::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Reject::SignatureMismatch => "signature_mismatch",
            Reject::InvalidJson => "invalid_json",
            Reject::UnknownSubscription => "unknown_subscription",
            Reject::MissingEvent => "missing_event",
            Reject::NoSigningKey => "no_signing_key",
        }
    }

    /// A fixed, human-readable message. Fixed on purpose: it can never carry a
    /// secret, an expected signature or the signed string.
    pub fn message(self) -> &'static str {
        match self {
            Reject::MethodNotAllowed => "only POST is accepted",
            Reject::IpNotAllowed => "source address is not allowed",
            Reject::UnknownTrigger => "no such trigger",
            Reject::MtlsRequired => "a verified client certificate is required",
            Reject::PeerNotAllowed => "client certificate is not allowed for this trigger",
            Reject::UnsupportedMediaType => "content-type must be application/json",
            Reject::PayloadTooLarge => "request body exceeds max_body_bytes",
            Reject::MissingSignature => "signature header is missing",
            Reject::MissingTimestamp => "timestamp header is missing",
            Reject::MalformedSignature => "signature header is malformed or repeated",
            Reject::MalformedTimestamp => "timestamp header is malformed or repeated",
            Reject::TimestampOutOfTolerance => "timestamp is outside the allowed tolerance",
            Reject::SignatureMismatch => "signature does not match",
            Reject::InvalidJson => "request body is not a JSON document",
            Reject::UnknownSubscription => "no such subscription",
            Reject::MissingEvent => "the event name is missing (x-combo-event or event_jsonpath)",
            Reject::NoSigningKey => "the subscription has no secret valid now",
        }
    }

    /// The JSON error body of SPEC.md.
    pub fn body(self) -> String {
        serde_json::json!({"error": {"code": self.code(), "message": self.message()}}).to_string()
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
            assert!((400..=500).contains(&r.status()));
        }
    }

    #[test]
    fn config_error_names_its_field() {
        let e = ConfigError::new("triggers[1].allow_cidrs[0]", "invalid CIDR \"10.0.0.0/33\"");
        assert_eq!(e.to_string(), "triggers[1].allow_cidrs[0]: invalid CIDR \"10.0.0.0/33\"");
    }
}
