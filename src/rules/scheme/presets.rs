//! The presets: schemes written as data (`presets.json`), compiled by the
//! same engine as a trigger's own `scheme:`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::raw::RawScheme;

const PRESETS_JSON: &str = include_str!("presets.json");

/// One preset as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// What a trigger of this preset configures.
    pub needs: String,
    /// The provider's description of the scheme.
    pub doc: String,
    pub scheme: RawScheme,
    /// Laid over `scheme` when the trigger gives `public_key` (Standard
    /// Webhooks `v1a`).
    #[serde(default)]
    pub public_key: Option<RawScheme>,
}

/// The table, parsed once per process (per Wasm VM).
fn table() -> &'static BTreeMap<String, Preset> {
    static TABLE: OnceLock<BTreeMap<String, Preset>> = OnceLock::new();
    // `presets.json` is checked by the tests: an entry that does not parse
    // fails them, and would read as an unknown preset here.
    TABLE.get_or_init(|| serde_json::from_str(PRESETS_JSON).unwrap_or_default())
}

/// Every preset's name, in order.
pub fn names() -> Vec<String> {
    table().keys().cloned().collect()
}

/// The preset called `name`.
pub fn find(name: &str) -> Option<Preset> {
    table().get(name).cloned()
}

/// Every preset, in order.
pub fn all() -> Vec<(String, Preset)> {
    table().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the book's preset list (docs "Presets"; and SPEC's): every one is here.
    const LISTED: [&str; 34] = [
        "generic_webhook",
        "github",
        "gitlab",
        "bitbucket",
        "stripe",
        "slack",
        "standard_webhooks",
        "shopify",
        "twilio",
        "sendgrid",
        "discord",
        "zoom",
        "pagerduty",
        "linear",
        "intercom",
        "mailgun",
        "paddle",
        "square",
        "hubspot",
        "typeform",
        "twitch",
        "okta",
        "jira",
        "workos",
        "meta",
        "dropbox",
        "calendly",
        "docusign",
        "coinbase",
        "vercel",
        "xero",
        "x",
        "woocommerce",
        "webflow",
    ];

    #[test]
    fn every_listed_preset_exists_and_compiles() {
        let all = all();
        let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_str(PRESETS_JSON).unwrap();
        assert_eq!(all.len(), raw.len(), "every entry parses");
        for name in LISTED {
            let p = find(name).unwrap_or_else(|| panic!("{name} missing"));
            super::super::compile(name, p.scheme.clone(), 300).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            if let Some(over) = p.public_key {
                super::super::compile(name, over.merge(p.scheme), 300).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            }
        }
        assert!(all.len() >= 70);
    }
}
