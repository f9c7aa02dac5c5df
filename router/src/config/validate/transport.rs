//! The listener's limits in `server:` (header, body, idle and write timeouts, shutdown grace,
//! header size, connections and requests in flight), defaults from
//! [`TransportLimits::default`]. Each must be positive; sizes and counts are bounded so that a
//! typo cannot disable a limit (or, for the header size, make hyper's buffer unbounded).

use std::time::Duration;

use super::Ctx;
use crate::config::raw::{RawDuration, RawServer};
use crate::config::ConfigError;
use crate::gateway::TransportLimits;

/// Largest `max_header_bytes` accepted (1 MiB: hyper buffers up to twice it per connection).
const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Smallest `max_header_bytes` accepted: a request line and a few ordinary headers.
const MIN_HEADER_BYTES: usize = 1024;
/// Largest connection or in-flight limit accepted.
const MAX_COUNT: usize = 1_000_000;

pub(super) fn validate_transport(
    s: &RawServer,
    ctx: &Ctx<'_>,
) -> Result<TransportLimits, ConfigError> {
    let d = TransportLimits::default();
    let duration = |value: Option<RawDuration>, name: &str, default: Duration| {
        let v = value.map_or(default, |r| r.0);
        if v.is_zero() {
            Err(ctx.err(&format!("server.{name}"), "must be > 0"))
        } else {
            Ok(v)
        }
    };
    let count = |value: Option<usize>, name: &str, default: usize, min: usize, max: usize| {
        let v = value.unwrap_or(default);
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(ctx.err(
                &format!("server.{name}"),
                format!("must be between {min} and {max} (got {v})"),
            ))
        }
    };
    Ok(TransportLimits {
        header_read_timeout: duration(
            s.header_read_timeout,
            "header_read_timeout",
            d.header_read_timeout,
        )?,
        body_read_timeout: duration(
            s.body_read_timeout,
            "body_read_timeout",
            d.body_read_timeout,
        )?,
        idle_timeout: duration(s.idle_timeout, "idle_timeout", d.idle_timeout)?,
        write_timeout: duration(s.write_timeout, "write_timeout", d.write_timeout)?,
        shutdown_grace: duration(s.shutdown_grace, "shutdown_grace", d.shutdown_grace)?,
        max_header_bytes: count(
            s.max_header_bytes,
            "max_header_bytes",
            d.max_header_bytes,
            MIN_HEADER_BYTES,
            MAX_HEADER_BYTES,
        )?,
        max_connections: count(
            s.max_connections,
            "max_connections",
            d.max_connections,
            1,
            MAX_COUNT,
        )?,
        max_in_flight: count(
            s.max_in_flight,
            "max_in_flight",
            d.max_in_flight,
            1,
            MAX_COUNT,
        )?,
    })
}
