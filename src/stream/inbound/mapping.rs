//! JSON, match and inputs of a verified delivery: what the agent receives.

use crate::contract::error::Reject;
use crate::contract::names::CONTENT_TYPE;
use crate::host::Headers;
use crate::plan::inbound::{InboundPlan, Trigger};
use crate::plan::raw::{InputsDelivery, OnNoMatch};
use crate::rules::annotate;
use crate::rules::inputs::{InputError, RenderContext};
use crate::rules::matcher;
use crate::rules::scheme::form::{self, FORM_MEDIA_TYPE};
use crate::rules::scheme::multipart::{self, MULTIPART_MEDIA_TYPE};

use super::checks::media_type;
use crate::stream::Outcome;

/// What a verified delivery maps to: whether the match holds, and the
/// rendered inputs. Shared by the stream and `combo-webhook inputs`.
pub struct Mapping {
    pub matched: bool,
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// The inputs as the `x-combo-inputs` header carries them.
    pub inputs_json: String,
    /// Inputs rendered as null after a template error or the work budget.
    pub failed: Vec<String>,
}

/// Why a verified delivery is answered at the edge instead of forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    Reject(Reject),
    /// 422, naming the input.
    Input(Reject, String),
    Ignored,
}

impl<F> From<Unmapped> for Outcome<F> {
    fn from(u: Unmapped) -> Self {
        match u {
            Unmapped::Reject(r) => Outcome::Reject(r),
            Unmapped::Input(r, name) => Outcome::RejectInput(r, name),
            Unmapped::Ignored => Outcome::Ignored,
        }
    }
}

/// JSON, match and inputs of a delivery to `trigger` (its signature already
/// verified), in the order of docs "Order of checks and answers".
pub fn map_delivery(
    plan: &InboundPlan,
    trigger: &Trigger,
    headers: &Headers,
    body: &[u8],
) -> Result<Mapping, Unmapped> {
    // A form or a multipart body (schemes that accept one) is seen as a
    // JSON object of its fields.
    let content_type = headers.first(CONTENT_TYPE).unwrap_or("");
    let payload = match media_type(content_type).as_str() {
        FORM_MEDIA_TYPE => form::to_json(body),
        MULTIPART_MEDIA_TYPE => multipart::to_json(content_type, body).map_err(|e| Unmapped::Reject(e.reject()))?,
        _ => serde_json::from_slice(body).map_err(|_| Unmapped::Reject(Reject::InvalidJson))?,
    };
    let payload = std::sync::Arc::new(payload);
    let matched = matcher::all_hold(&trigger.conditions, &payload);
    if !matched && plan.on_no_match == OnNoMatch::Ignore {
        return Err(Unmapped::Ignored);
    }
    let ctx = RenderContext {
        payload: &payload,
        headers,
        hidden_headers: &trigger.scheme.signature_headers,
        trigger_id: &trigger.id,
        agent_id: &trigger.agent_id,
        source: &trigger.scheme.name,
    };
    let mut failed = Vec::new();
    // With the envelope the inputs travel in the body, bounded like it.
    let max_bytes = match plan.inputs_delivery {
        InputsDelivery::Header => plan.max_inputs_bytes,
        InputsDelivery::Envelope => plan.max_body_bytes as usize,
    };
    let inputs = plan.templates.render(trigger.inputs, &ctx, max_bytes, &mut failed).map_err(|e| match e {
        InputError::Missing(name) => Unmapped::Input(Reject::MissingInput, name),
        InputError::Invalid(name) => Unmapped::Input(Reject::InvalidInput, name),
        InputError::TooLarge => Unmapped::Reject(Reject::InputsTooLarge),
    })?;
    let inputs_json = annotate::ascii_json(&inputs);
    if inputs_json.len() > plan.max_inputs_bytes && plan.inputs_delivery == InputsDelivery::Header {
        return Err(Unmapped::Reject(Reject::InputsTooLarge));
    }
    Ok(Mapping { matched, inputs, inputs_json, failed })
}
