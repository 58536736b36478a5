//! Every header name the filter reads or writes, lowercase as Envoy hands
//! them over. One place, so a name cannot drift between reader and writer.
//! And how long a name or id may be: one bound for all of them.

/// The longest id, name, header name or prefix the configuration may hold,
/// and the longest a delivery's id may be to be echoed as it is (every one
/// of them can travel in a header).
pub const MAX_NAME: usize = 128;

/// A non-empty visible-ASCII string of at most `MAX_NAME` bytes.
pub fn short_visible(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_graphic())
}

// Annotations the backend receives (docs "What the backend receives").
pub const TRIGGER_ID: &str = "x-combo-trigger-id";
pub const AGENT_ID: &str = "x-combo-agent-id";
pub const INPUTS: &str = "x-combo-inputs";
pub const SOURCE: &str = "x-combo-source";
pub const KEY_ID: &str = "x-combo-key-id";
pub const DELIVERY_ID: &str = "x-combo-delivery-id";
pub const MATCHED: &str = "x-combo-matched";

/// Headers only the filter may set; a client-sent copy is removed from every request.
pub const ANNOTATIONS: [&str; 7] = [TRIGGER_ID, AGENT_ID, INPUTS, SOURCE, KEY_ID, DELIVERY_ID, MATCHED];

// The platform's own signing scheme.
pub const COMBO_SIGNATURE: &str = "x-combo-signature";
pub const COMBO_TIMESTAMP: &str = "x-combo-timestamp";

// Outbound.
pub const SUBSCRIPTION: &str = "x-combo-subscription";
pub const EVENT: &str = "x-combo-event";
/// Set on skipped events (`x-combo-delivery: skipped`).
pub const DELIVERY_STATUS: &str = "x-combo-delivery";
/// Carries the subscription id to Envoy's route match once `x-combo-subscription`
/// is removed; the egress route strips it (`request_headers_to_remove`).
pub const ROUTE: &str = "x-combo-route";

// HTTP.
pub const METHOD: &str = ":method";
pub const PATH: &str = ":path";
pub const STATUS: &str = ":status";
pub const CONTENT_TYPE: &str = "content-type";
pub const CONTENT_LENGTH: &str = "content-length";
pub const ALLOW: &str = "allow";
pub const RETRY_AFTER: &str = "retry-after";
pub const CONTENT_TYPE_OPTIONS: &str = "x-content-type-options";
pub const REQUEST_ID: &str = "x-request-id";
pub const FORWARDED_CLIENT_CERT: &str = "x-forwarded-client-cert";
