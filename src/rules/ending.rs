//! How a forwarded delivery ended, read from Envoy's response code details
//! (README "Replay": at most once, even when the answer never comes).
//!
//! - The backend answered (`via_upstream`): a 2xx is delivered, anything
//!   else is not.
//! - The request never reached a backend (no route, no cluster, no healthy
//!   upstream, a connection that was never made, overflow, a local reply of
//!   another filter): not delivered.
//! - It was forwarded and no answer came (a timeout, a reset after the
//!   connection was made, the client gone after forwarding): unknown. The
//!   backend may have acted on it; `replay.unknown_outcome` decides.

/// What the end of a forwarded delivery means for its reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Delivered,
    NotDelivered,
    Unknown,
}

/// Envoy's details when the upstream itself answered.
pub const VIA_UPSTREAM: &str = "via_upstream";

/// Details of an answer Envoy made up after the request may have reached
/// the backend (`StreamInfo::ResponseCodeDetails`): timeouts and resets.
const MAYBE_REACHED: [&str; 7] = [
    "response_timeout",
    "upstream_response_timeout",
    "upstream_per_try_timeout",
    "upstream_per_try_idle_timeout",
    "upstream_max_stream_duration_reached",
    "upstream_reset_before_response_started",
    "upstream_reset_after_response_started",
];

/// Details that prove the request never left Envoy.
const NEVER_SENT: [&str; 4] = ["route_not_found", "cluster_not_found", "no_healthy_upstream", "maintenance_mode"];

/// `status`: what reached the filter's response phase (`None`: the stream
/// ended without an answer); `details`: Envoy's response code details.
pub fn ending(status: Option<u32>, details: Option<&str>) -> Ending {
    let details = details.unwrap_or("");
    if details == VIA_UPSTREAM {
        return match status {
            Some(s) if (200..300).contains(&s) => Ending::Delivered,
            _ => Ending::NotDelivered,
        };
    }
    if never_sent(details) {
        return Ending::NotDelivered;
    }
    let maybe_reached = MAYBE_REACHED.iter().any(|d| details.starts_with(d));
    match status {
        // No answer passed the filter: the client or the upstream went away.
        None => Ending::Unknown,
        Some(_) if maybe_reached => Ending::Unknown,
        // A local reply of Envoy or of a filter after this one, before any
        // upstream was involved (a rate limit, a direct response).
        Some(_) => Ending::NotDelivered,
    }
}

fn never_sent(details: &str) -> bool {
    if NEVER_SENT.iter().any(|d| details.starts_with(d)) {
        return true;
    }
    // `upstream_reset_before_response_started{connection_failure,...}` or
    // `{overflow}`: no connection carried the request.
    details.strip_prefix("upstream_reset_before_response_started{").is_some_and(|reason| {
        let reason = reason.split('}').next().unwrap_or("");
        reason.contains("connection_failure") || reason == "overflow" || reason.starts_with("overflow")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backends_answer_decides() {
        assert_eq!(ending(Some(200), Some("via_upstream")), Ending::Delivered);
        assert_eq!(ending(Some(204), Some("via_upstream")), Ending::Delivered);
        assert_eq!(ending(Some(503), Some("via_upstream")), Ending::NotDelivered);
        assert_eq!(ending(Some(302), Some("via_upstream")), Ending::NotDelivered);
    }

    #[test]
    fn never_sent_is_released() {
        for d in [
            "route_not_found",
            "cluster_not_found",
            "no_healthy_upstream",
            "upstream_reset_before_response_started{remote_connection_failure,delayed_connect_error:_Connection_refused}",
            "upstream_reset_before_response_started{connection_failure}",
            "upstream_reset_before_response_started{overflow}",
        ] {
            assert_eq!(ending(Some(503), Some(d)), Ending::NotDelivered, "{d}");
            assert_eq!(ending(None, Some(d)), Ending::NotDelivered, "{d}");
        }
        assert_eq!(ending(Some(429), Some("request_rate_limited")), Ending::NotDelivered);
        assert_eq!(ending(Some(429), None), Ending::NotDelivered);
    }

    #[test]
    fn forwarded_without_an_answer_is_unknown() {
        for d in [
            "response_timeout",
            "upstream_response_timeout",
            "upstream_per_try_timeout",
            "upstream_reset_before_response_started{remote_reset}",
            "upstream_reset_before_response_started{connection_termination}",
            "upstream_max_stream_duration_reached",
        ] {
            assert_eq!(ending(Some(504), Some(d)), Ending::Unknown, "{d}");
        }
        assert_eq!(ending(None, None), Ending::Unknown, "the client hung up after forwarding");
        assert_eq!(ending(None, Some("downstream_remote_disconnect")), Ending::Unknown);
    }
}
