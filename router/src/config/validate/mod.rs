//! Validation: raw structs ([`super::raw`]) into the runtime [`Config`], in which an invalid
//! policy cannot be expressed. Every error is located through [`Ctx`], which places a field path
//! in the file with the [`Locator`].
//!
//! This file holds the order of the checks, the `server` section and the helpers every section
//! uses; each other section has its own file: [`backends`], [`pricing`] (prices and budgets),
//! [`routes`], [`detect`] (classifier and PII detector), [`shared`] (the shared store and rate
//! limits) and [`transport`] (the listener's
//! limits, part of `server`).

mod backends;
mod detect;
mod pricing;
mod routes;
mod shared;
mod transport;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::locate::Locator;
use super::raw::{RawConfig, RawServer};
use super::{Config, ConfigError, ServerConfig};
use crate::policy::{Locality, Policy};
use crate::store::LedgerLocation;

/// Builds located errors during validation.
pub(super) struct Ctx<'a> {
    pub(super) file: &'a str,
    pub(super) locator: Locator,
}

impl Ctx<'_> {
    /// An error about `path`, at its value (or its key, or its nearest ancestor in the file).
    fn err(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let at = self.locator.nearest(path);
        ConfigError {
            file: self.file.to_string(),
            line: at.map(|a| a.line),
            column: at.map(|a| a.column),
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// Check every section in turn; the first error found is returned.
pub(super) fn validate(raw: RawConfig, ctx: &Ctx<'_>, dir: &Path) -> Result<Config, ConfigError> {
    let server = validate_server(&raw.server, ctx, dir)?;
    let backends = backends::validate_backends(&raw.backends, ctx, dir)?;
    let names: BTreeSet<String> = backends.keys().cloned().collect();
    let locality: BTreeMap<String, Locality> = backends
        .iter()
        .map(|(n, b)| (n.clone(), b.locality()))
        .collect();
    let costs = pricing::validate_pricing(&raw, &backends, &names, ctx)?;
    // A local engine's admission-queue bound: a spill threshold above it could never fire.
    let queue_bounds: BTreeMap<String, usize> = backends
        .iter()
        .filter_map(|(n, b)| match b {
            super::BackendSpec::Local(engine) => Some((n.clone(), engine.queue_capacity)),
            super::BackendSpec::Remote(_)
            | super::BackendSpec::Embedding(_)
            | super::BackendSpec::Classifier(_) => None,
        })
        .collect();
    // Routes and budgets send chat: an embedding backend is no place for it.
    let chat_names: BTreeSet<String> = backends
        .iter()
        .filter(|(_, b)| b.is_chat())
        .map(|(n, _)| n.clone())
        .collect();
    let routes = routes::validate_routes(&raw.routes, &locality, &queue_bounds, &chat_names, ctx)?;
    let budgets = match &raw.budgets {
        None => None,
        Some(b) => Some(pricing::validate_budgets(b, &locality, &chat_names, ctx)?),
    };
    let mut warnings = Vec::new();
    let classifier = detect::validate_classifier(raw.classifier.as_ref(), ctx, dir, &mut warnings)?;
    let (pii, non_text) = detect::validate_pii(raw.pii.as_ref(), ctx)?;
    let shared = shared::validate_shared(&raw, ctx)?;
    let telemetry = validate_telemetry(raw.telemetry.as_ref(), ctx)?;

    Ok(Config {
        file: ctx.file.to_string(),
        dir: dir.to_path_buf(),
        server,
        backends,
        costs,
        policy: Policy {
            rules: routes.rules,
            budgets,
            backends: locality,
            privacy_rule: routes.privacy_rule,
            non_text,
        },
        classifier,
        pii,
        shared,
        telemetry,
        warnings,
    })
}

/// `telemetry.otlp_endpoint` must be an `http://` or `https://` URL.
fn validate_telemetry(
    raw: Option<&super::raw::RawTelemetry>,
    ctx: &Ctx<'_>,
) -> Result<super::Telemetry, ConfigError> {
    let Some(raw) = raw else {
        return Ok(super::Telemetry {
            otlp_endpoint: None,
            service_name: "triage".into(),
        });
    };
    if let Some(url) = &raw.otlp_endpoint {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
            return Err(ctx.err(
                "telemetry.otlp_endpoint",
                format!("{url:?} is not an http:// or https:// URL such as http://127.0.0.1:4318"),
            ));
        }
    }
    let service_name = raw.service_name.clone().unwrap_or_else(|| "triage".into());
    if service_name.trim().is_empty() {
        return Err(ctx.err("telemetry.service_name", "must not be empty"));
    }
    Ok(super::Telemetry {
        otlp_endpoint: raw.otlp_endpoint.clone(),
        service_name,
    })
}

/// The names in a message: `known: a, b`.
fn known(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Backend, tenant and pattern names: letters, digits, `_`, `-` and `.`.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn check_name(name: &str, path: &str, ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(ctx.err(
            path,
            format!("name {name:?} may only hold letters, digits, '_', '-' and '.'"),
        ));
    }
    Ok(())
}

/// A path from the file: absolute, or relative to the file's directory.
fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn validate_server(s: &RawServer, ctx: &Ctx<'_>, dir: &Path) -> Result<ServerConfig, ConfigError> {
    let listen = match &s.listen {
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(l) => l.parse().map_err(|e| {
            ctx.err(
                "server.listen",
                format!("{l:?} is not an address such as 127.0.0.1:8080: {e}"),
            )
        })?,
    };
    if let Some(var) = &s.api_keys_env {
        if var.is_empty() || var.contains('=') {
            return Err(ctx.err("server.api_keys_env", "must name an environment variable"));
        }
    }
    let metrics_require_key = s.metrics_require_key.unwrap_or(false);
    if metrics_require_key && s.api_keys_env.is_none() {
        return Err(ctx.err(
            "server.metrics_require_key",
            "needs server.api_keys_env: without keys there is nothing to require",
        ));
    }
    let body_limit_bytes = s.body_limit_bytes.unwrap_or(4 * 1024 * 1024);
    if body_limit_bytes == 0 {
        return Err(ctx.err("server.body_limit_bytes", "must be > 0"));
    }
    let request_timeout = s
        .request_timeout
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(300));
    if request_timeout.is_zero() {
        return Err(ctx.err("server.request_timeout", "must be > 0"));
    }
    let admin_tenants = s.admin_tenants.clone().unwrap_or_default();
    if !admin_tenants.is_empty() && s.api_keys_env.is_none() {
        return Err(ctx.err(
            "server.admin_tenants",
            "needs server.api_keys_env: without keys there are no tenants",
        ));
    }
    for (i, t) in admin_tenants.iter().enumerate() {
        if t.is_empty() || !t.chars().all(is_name_char) {
            return Err(ctx.err(
                &format!("server.admin_tenants[{i}]"),
                format!("{t:?} is not a tenant name (letters, digits, `_`, `-`, `.`)"),
            ));
        }
    }
    let cors_allow_origins = s.cors_allow_origins.clone().unwrap_or_default();
    for (i, o) in cors_allow_origins.iter().enumerate() {
        if let Err(why) = check_origin(o) {
            return Err(ctx.err(&format!("server.cors_allow_origins[{i}]"), why));
        }
    }
    Ok(ServerConfig {
        listen,
        api_keys_env: s.api_keys_env.clone(),
        metrics_require_key,
        body_limit_bytes,
        request_timeout,
        ledger: LedgerLocation::parse(s.ledger.as_deref().unwrap_or("triage-ledger.sqlite"), dir)
            .map_err(|e| ctx.err("server.ledger", e.to_string()))?,
        admin_tenants,
        cors_allow_origins,
        transport: transport::validate_transport(s, ctx)?,
    })
}

/// A web origin as browsers send it: `http(s)://host[:port]`, nothing after the authority.
/// `*` is refused: any site could then drive the gateway from its visitors' browsers.
fn check_origin(o: &str) -> Result<(), String> {
    if o == "*" {
        return Err("`*` would let every web site call the gateway; list the origins".into());
    }
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or_else(|| format!("{o:?} is not an origin such as https://app.example.com"))?;
    let ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{o:?} is not an origin such as https://app.example.com (scheme, host and port only)"
        ))
    }
}
