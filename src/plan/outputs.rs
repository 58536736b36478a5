//! What a forwarded delivery hands Envoy besides the request: the
//! annotations set and the audit filter state (docs "Opt-in cuts"), checked
//! once at configure time.

use super::raw::OnNoMatch;
use super::Compiler;
use crate::contract::names::{ANNOTATIONS, DELIVERY_ID, MATCHED};

/// What a forwarded delivery hands Envoy besides the request itself. The
/// defaults are the contract; a shorter list or `false` is an opt-in cut
/// (docs "Opt-in cuts") for a deployment that does not read it.
#[derive(Debug, Clone, Copy)]
pub struct Outputs {
    /// The annotations set: bit `i` for `names::ANNOTATIONS[i]`.
    annotations: u8,
    /// The audit record as filter state, which the access log reads.
    pub audit_filter_state: bool,
}

const ALL_ANNOTATIONS: u8 = (1 << ANNOTATIONS.len()) - 1;

impl Default for Outputs {
    fn default() -> Self {
        Outputs { annotations: ALL_ANNOTATIONS, audit_filter_state: true }
    }
}

impl Outputs {
    pub fn annotates(&self, name: &str) -> bool {
        ANNOTATIONS.iter().position(|a| *a == name).is_some_and(|i| self.annotations & (1 << i) != 0)
    }

    pub fn annotates_all(&self) -> bool {
        self.annotations == ALL_ANNOTATIONS
    }

    /// The annotations set, in the contract's order.
    pub fn annotations(&self) -> Vec<&'static str> {
        ANNOTATIONS.iter().copied().filter(|a| self.annotates(a)).collect()
    }
}

/// The annotations a cut may never leave out: the delivery id backends
/// deduplicate on (docs "Replay protection"), and, with `on_no_match:
/// forward`, the only mark of a delivery that did not match.
fn required_annotations(on_no_match: OnNoMatch) -> &'static [&'static str] {
    match on_no_match {
        OnNoMatch::Forward => &[DELIVERY_ID, MATCHED],
        OnNoMatch::Ignore => &[DELIVERY_ID],
    }
}

pub(super) fn compile(
    annotations: Option<Vec<String>>,
    audit: Option<bool>,
    on_no_match: OnNoMatch,
    c: &mut Compiler,
) -> Outputs {
    let mut out = Outputs { audit_filter_state: audit.unwrap_or(true), ..Outputs::default() };
    if let Some(names) = annotations {
        for (i, name) in names.iter().enumerate() {
            if !ANNOTATIONS.contains(&name.as_str()) {
                c.error(format!("annotations[{i}]"), format!("{name:?} is not one of {}", ANNOTATIONS.join(", ")));
            } else if names[..i].contains(name) {
                c.error(format!("annotations[{i}]"), format!("{name:?} is listed twice"));
            }
        }
        out.annotations = (0..ANNOTATIONS.len())
            .filter(|i| names.iter().any(|n| n == ANNOTATIONS[*i]))
            .fold(0, |bits, i| bits | 1 << i);
        for name in required_annotations(on_no_match) {
            if !out.annotates(name) {
                let why = if *name == MATCHED {
                    "with on_no_match: forward it is the only mark of a delivery that did not match"
                } else {
                    "backends deduplicate on it"
                };
                c.error("annotations", format!("must list {name}: {why}"));
            }
        }
    }
    out
}
