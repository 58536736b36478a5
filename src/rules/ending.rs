//! How a forwarded delivery ended, read from Envoy's response code details
//! and the router's attempt count (docs "Replay protection": at most once, even when
//! the answer never comes).
//!
//! - The backend answered (`via_upstream`) on the only try: a 2xx is
//!   delivered, anything else is not.
//! - The request never left Envoy (no route, no cluster, no healthy
//!   upstream, or no upstream request was ever started: a local reply of a
//!   filter after this one, a stream timeout before the router ran), or its
//!   only try never connected (a connection failure, overflow): not
//!   delivered.
//! - Anything else was forwarded and got no answer the filter can trust: a
//!   timeout of the route, of the try or of the stream, a reset after the
//!   connection was made, the client gone after forwarding, or a retry (an
//!   earlier try may have reached a backend whatever the last one says).
//!   Unknown: `replay.unknown_outcome` decides.
//! - An Envoy that gives a dynamic module no response code details (1.38):
//!   a 2xx answer is delivered (committing can only lose a delivery, never
//!   let a copy through), anything else is unknown.

/// What the end of a forwarded delivery means for its reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Delivered,
    NotDelivered,
    Unknown,
}

pub use crate::host::VIA_UPSTREAM;

/// Details that prove the request never left Envoy.
const NEVER_SENT: [&str; 5] =
    ["route_not_found", "cluster_not_found", "no_healthy_upstream", "maintenance_mode", "direct_response"];

/// `status`: what reached the filter's response phase (`None`: the stream
/// ended without an answer); `details`: Envoy's response code details;
/// `attempts`: the upstream requests the router started (`None`: unknown).
pub fn ending(status: Option<u32>, details: Option<&str>, attempts: Option<u64>) -> Ending {
    let Some(details) = details else {
        return match status {
            Some(s) if (200..300).contains(&s) => Ending::Delivered,
            _ => Ending::Unknown,
        };
    };
    let retried = attempts.is_none_or(|n| n > 1);
    if details == VIA_UPSTREAM {
        return match status {
            Some(s) if (200..300).contains(&s) => Ending::Delivered,
            _ if retried => Ending::Unknown,
            _ => Ending::NotDelivered,
        };
    }
    if NEVER_SENT.iter().any(|d| details.starts_with(d)) || attempts == Some(0) {
        return Ending::NotDelivered;
    }
    if !retried && never_connected(details) {
        return Ending::NotDelivered;
    }
    Ending::Unknown
}

/// `upstream_reset_before_response_started{connection_failure,...}` or
/// `{overflow}`: no connection carried the request.
fn never_connected(details: &str) -> bool {
    details.strip_prefix("upstream_reset_before_response_started{").is_some_and(|reason| {
        let reason = reason.split('}').next().unwrap_or("");
        reason.contains("connection_failure") || reason.starts_with("overflow")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONCE: Option<u64> = Some(1);

    #[test]
    fn without_details_only_a_2xx_is_delivered() {
        assert_eq!(ending(Some(200), None, None), Ending::Delivered);
        assert_eq!(ending(Some(503), None, None), Ending::Unknown);
        assert_eq!(ending(None, None, None), Ending::Unknown);
    }

    #[test]
    fn the_backends_answer_on_the_only_try_decides() {
        assert_eq!(ending(Some(200), Some("via_upstream"), ONCE), Ending::Delivered);
        assert_eq!(ending(Some(204), Some("via_upstream"), ONCE), Ending::Delivered);
        assert_eq!(ending(Some(503), Some("via_upstream"), ONCE), Ending::NotDelivered);
        assert_eq!(ending(Some(302), Some("via_upstream"), ONCE), Ending::NotDelivered);
        assert_eq!(ending(Some(200), Some("via_upstream"), Some(3)), Ending::Delivered, "a retry that got through");
        assert_eq!(ending(Some(503), Some("via_upstream"), Some(2)), Ending::Unknown, "an earlier try may have landed");
    }

    #[test]
    fn never_sent_is_released() {
        for d in ["route_not_found", "cluster_not_found", "no_healthy_upstream", "direct_response"] {
            assert_eq!(ending(Some(503), Some(d), Some(0)), Ending::NotDelivered, "{d}");
            assert_eq!(ending(Some(503), Some(d), None), Ending::NotDelivered, "{d}");
        }
        for d in [
            "upstream_reset_before_response_started{remote_connection_failure,delayed_connect_error:_Connection_refused}",
            "upstream_reset_before_response_started{connection_failure}",
            "upstream_reset_before_response_started{overflow}",
        ] {
            assert_eq!(ending(Some(503), Some(d), ONCE), Ending::NotDelivered, "{d}");
        }
        // No upstream request was started: a later filter's local reply, a
        // stream timeout before the router ran, the client gone early.
        assert_eq!(ending(Some(429), Some("request_rate_limited"), Some(0)), Ending::NotDelivered);
        assert_eq!(ending(Some(504), Some("stream_idle_timeout"), Some(0)), Ending::NotDelivered);
        assert_eq!(ending(None, Some("downstream_remote_disconnect"), Some(0)), Ending::NotDelivered);
    }

    #[test]
    fn forwarded_without_an_answer_is_unknown() {
        for d in [
            "response_timeout",
            "upstream_per_try_timeout",
            "upstream_reset_before_response_started{remote_reset}",
            "upstream_reset_before_response_started{connection_termination}",
            "upstream_max_stream_duration_reached",
            "stream_idle_timeout",
            "max_duration_timeout",
            "request_overall_timeout",
        ] {
            assert_eq!(ending(Some(504), Some(d), ONCE), Ending::Unknown, "{d}");
        }
        assert_eq!(ending(None, None, ONCE), Ending::Unknown, "the client hung up after forwarding");
        assert_eq!(ending(None, Some("downstream_remote_disconnect"), ONCE), Ending::Unknown);
    }

    #[test]
    fn a_retried_request_is_unknown_whatever_the_last_try_says() {
        // The first try reached a backend that crashed; the retry found it gone.
        let refused = "upstream_reset_before_response_started{remote_connection_failure}";
        assert_eq!(ending(Some(503), Some(refused), Some(2)), Ending::Unknown);
        assert_eq!(ending(Some(503), Some(refused), None), Ending::Unknown, "attempts unknown: assume retried");
    }
}
