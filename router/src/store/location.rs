//! Where the ledger lives, as `server.ledger` and `triage ledger summary --ledger` name it: a
//! SQLite file path, or a `postgres://user[:password]@host:port/db` URL.
//!
//! A URL may carry a password, so [`PostgresUrl`] never shows it: its `Display` and `Debug`
//! replace it by `***`, and errors name the database as `host:port/db`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::StoreError;

/// A ledger: a SQLite file or a Postgres database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerLocation {
    /// A SQLite file (resolved against the config's directory).
    Sqlite(PathBuf),
    /// A Postgres database (boxed: its parsed settings are large).
    Postgres(Box<PostgresUrl>),
}

impl LedgerLocation {
    /// `text` as a location: a `postgres://` or `postgresql://` URL, else a file path resolved
    /// against `dir` when relative.
    pub fn parse(text: &str, dir: &Path) -> Result<LedgerLocation, StoreError> {
        if PostgresUrl::looks_like(text) {
            return PostgresUrl::parse(text).map(|u| LedgerLocation::Postgres(Box::new(u)));
        }
        let path = Path::new(text);
        Ok(LedgerLocation::Sqlite(if path.is_absolute() {
            path.to_path_buf()
        } else {
            dir.join(path)
        }))
    }
}

impl fmt::Display for LedgerLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerLocation::Sqlite(path) => write!(f, "{}", path.display()),
            LedgerLocation::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// A parsed Postgres connection URL; shown without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    config: tokio_postgres::Config,
    redacted: String,
}

impl PostgresUrl {
    /// Whether `text` is meant as a Postgres URL (by its scheme).
    pub fn looks_like(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// Parse `postgres://user[:password]@host[:port]/db[?options]`.
    pub fn parse(text: &str) -> Result<PostgresUrl, StoreError> {
        let redacted = redact(text);
        if !Self::looks_like(text) {
            return Err(StoreError::BadUrl {
                url: redacted,
                reason: "it must start with postgres:// or postgresql://".into(),
            });
        }
        let config = tokio_postgres::Config::from_str(text).map_err(|e| StoreError::BadUrl {
            url: redacted.clone(),
            reason: e.to_string(),
        })?;
        if config.get_hosts().is_empty() {
            return Err(StoreError::BadUrl {
                url: redacted,
                reason: "no host (postgres://user@host:port/db)".into(),
            });
        }
        if config.get_user().is_none() {
            return Err(StoreError::BadUrl {
                url: redacted,
                reason: "no user (postgres://user@host:port/db)".into(),
            });
        }
        Ok(PostgresUrl { config, redacted })
    }

    /// The driver's connection settings.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// `host:port/db`, for logs and errors.
    pub fn target(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "?".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self
            .config
            .get_dbname()
            .or(self.config.get_user())
            .unwrap_or("?");
        format!("{host}:{port}/{db}")
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({})", self.redacted)
    }
}

/// `text` with the password of its user-info and any `password=` option replaced by `***`.
fn redact(text: &str) -> String {
    let mut out = text.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let userinfo = &out[rest..rest + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    if let Some(p) = out.find("password=") {
        let start = p + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |i| start + i);
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        let dir = Path::new("/etc/triage");
        assert_eq!(
            LedgerLocation::parse("ledger.sqlite", dir).unwrap(),
            LedgerLocation::Sqlite(PathBuf::from("/etc/triage/ledger.sqlite"))
        );
        assert_eq!(
            LedgerLocation::parse("/var/l.sqlite", dir).unwrap(),
            LedgerLocation::Sqlite(PathBuf::from("/var/l.sqlite"))
        );
        let LedgerLocation::Postgres(url) =
            LedgerLocation::parse("postgres://triage@db.internal:6543/ledger", dir).unwrap()
        else {
            panic!("not postgres")
        };
        assert_eq!(url.target(), "db.internal:6543/ledger");
        assert!(LedgerLocation::parse("postgres://", dir).is_err());
        assert!(LedgerLocation::parse("postgres://db:5432/x", dir).is_err()); // no user
    }

    #[test]
    fn passwords_never_show() {
        let url =
            PostgresUrl::parse("postgres://u:s3cret@h:5432/d?password=other&application_name=x")
                .unwrap();
        for shown in [url.to_string(), format!("{url:?}")] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("other"),
                "{shown}"
            );
            assert!(shown.contains("u:***@h:5432/d"), "{shown}");
        }
        let bad = PostgresUrl::parse("postgres://u:s3cret@h:notaport/d").unwrap_err();
        assert!(!bad.to_string().contains("s3cret"), "{bad}");
    }
}
