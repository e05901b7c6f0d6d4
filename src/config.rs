//! Configuration: defaults → TOML file → `GATEWATCH_*` environment → command-line flags,
//! validated into [`Config`].
//!
//! Environment names: `GATEWATCH_DATA`, `GATEWATCH_LISTEN`, and `GATEWATCH_SECTION__KEY`
//! for the keys of a section (e.g. `GATEWATCH_INGEST__QUEUE_CAPACITY`). Unknown
//! `GATEWATCH_*` variables are reported as warnings, since a typo would otherwise be silent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::app::WebSettings;
use crate::http::Limits;
use crate::store::WriterConfig;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory holding the store.
    pub data: PathBuf,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// `tracing` filter, e.g. `info` or `gatewatch=debug`.
    pub log: String,
    pub server: ServerConfig,
    pub ingest: IngestConfig,
    pub dashboard: DashboardConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// A dashboard session ends this long after its login.
    pub session_ttl_s: u64,
    /// Mark the session cookie `Secure`: set it when users reach gatewatch over HTTPS
    /// (a TLS-terminating proxy in front of it).
    pub secure_cookies: bool,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        let web = WebSettings::default();
        DashboardConfig {
            session_ttl_s: web.session_ttl_ms / 1000,
            secure_cookies: web.secure_cookies,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub max_connections: usize,
    pub header_read_timeout_s: u64,
    pub request_timeout_s: u64,
    pub drain_timeout_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Requests that may wait for the writer.
    pub queue_capacity: usize,
    /// Most events in one group commit.
    pub max_group_events: usize,
    /// How long a request waits for room in a full queue before 503.
    pub enqueue_wait_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data: PathBuf::from("./gatewatch-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log: "info".into(),
            server: ServerConfig::default(),
            ingest: IngestConfig::default(),
            dashboard: DashboardConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        let limits = Limits::default();
        ServerConfig {
            max_connections: limits.max_connections,
            header_read_timeout_s: limits.header_read_timeout.as_secs(),
            request_timeout_s: limits.request_timeout.as_secs(),
            drain_timeout_s: limits.drain_timeout.as_secs(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        let writer = WriterConfig::default();
        IngestConfig {
            queue_capacity: writer.queue_capacity,
            max_group_events: writer.max_group_events,
            enqueue_wait_ms: writer.enqueue_wait.as_millis() as u64,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{name}: {message}")]
    Env { name: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// Builds the effective configuration. Returns it with warnings to log.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Toml {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        let mut warnings = Vec::new();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("GATEWATCH_") else {
                continue;
            };
            if !config.set_from_env(key, &value)? {
                warnings.push(format!("unknown environment variable {name} ignored"));
            }
        }
        if let Some(data) = &overrides.data {
            config.data = data.clone();
        }
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        config.validate()?;
        Ok((config, warnings))
    }

    /// Applies one `GATEWATCH_<key>` variable; `false` when the key is unknown.
    fn set_from_env(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name: format!("GATEWATCH_{key}"),
                message: e.to_string(),
            })
        }
        match key {
            "DATA" => self.data = PathBuf::from(value),
            "LISTEN" => self.listen = parse(key, value)?,
            "LOG" => self.log = value.to_owned(),
            "SERVER__MAX_CONNECTIONS" => self.server.max_connections = parse(key, value)?,
            "SERVER__HEADER_READ_TIMEOUT_S" => {
                self.server.header_read_timeout_s = parse(key, value)?
            }
            "SERVER__REQUEST_TIMEOUT_S" => self.server.request_timeout_s = parse(key, value)?,
            "SERVER__DRAIN_TIMEOUT_S" => self.server.drain_timeout_s = parse(key, value)?,
            "INGEST__QUEUE_CAPACITY" => self.ingest.queue_capacity = parse(key, value)?,
            "INGEST__MAX_GROUP_EVENTS" => self.ingest.max_group_events = parse(key, value)?,
            "INGEST__ENQUEUE_WAIT_MS" => self.ingest.enqueue_wait_ms = parse(key, value)?,
            "DASHBOARD__SESSION_TTL_S" => self.dashboard.session_ttl_s = parse(key, value)?,
            "DASHBOARD__SECURE_COOKIES" => self.dashboard.secure_cookies = parse(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("server.max_connections", self.server.max_connections as u64),
            (
                "server.header_read_timeout_s",
                self.server.header_read_timeout_s,
            ),
            ("server.request_timeout_s", self.server.request_timeout_s),
            ("ingest.queue_capacity", self.ingest.queue_capacity as u64),
            (
                "ingest.max_group_events",
                self.ingest.max_group_events as u64,
            ),
            ("dashboard.session_ttl_s", self.dashboard.session_ttl_s),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be positive")));
            }
        }
        if self.data.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("data must name a directory".into()));
        }
        Ok(())
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.server.max_connections,
            header_read_timeout: Duration::from_secs(self.server.header_read_timeout_s),
            request_timeout: Duration::from_secs(self.server.request_timeout_s),
            drain_timeout: Duration::from_secs(self.server.drain_timeout_s),
            ..Limits::default()
        }
    }

    pub fn web(&self) -> WebSettings {
        WebSettings {
            session_ttl_ms: self.dashboard.session_ttl_s.saturating_mul(1000),
            secure_cookies: self.dashboard.secure_cookies,
            ..WebSettings::default()
        }
    }

    pub fn writer(&self) -> WriterConfig {
        WriterConfig {
            queue_capacity: self.ingest.queue_capacity,
            max_group_events: self.ingest.max_group_events,
            enqueue_wait: Duration::from_millis(self.ingest.enqueue_wait_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[ingest]\nqueue_capacity = 7\n",
        )
        .expect("writes");
        let (c, warnings) = Config::load(
            Some(&file),
            env(&[
                ("GATEWATCH_LISTEN", "127.0.0.1:9001"),
                ("GATEWATCH_INGEST__MAX_GROUP_EVENTS", "5"),
                ("GATEWATCH_TYPO", "x"),
                ("HOME", "/root"),
            ]),
            &Overrides {
                data: Some("/tmp/d".into()),
                listen: None,
            },
        )
        .expect("loads");
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.ingest.queue_capacity, 7);
        assert_eq!(c.ingest.max_group_events, 5);
        assert_eq!(c.data, PathBuf::from("/tmp/d"));
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::load(
            None,
            env(&[("GATEWATCH_LISTEN", "nope")]),
            &Overrides::default()
        )
        .is_err());
        assert!(Config::load(
            None,
            env(&[("GATEWATCH_INGEST__QUEUE_CAPACITY", "0")]),
            &Overrides::default()
        )
        .is_err());
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "lisen = 1\n").expect("writes");
        assert!(Config::load(Some(&file), env(&[]), &Overrides::default()).is_err());
    }
}
