//! Typed configuration: `config.toml`, `${VAR}` substitution, validation.
//!
//! Loading is three steps, each with an error that names the file and the key:
//!
//! 1. parse the TOML text;
//! 2. replace every `${VAR}` inside a string with the environment variable
//!    (an unset variable is an error naming the key that asked for it);
//! 3. deserialize into [`Config`] with `deny_unknown_fields` everywhere, so a
//!    misspelt key is an error rather than a silently ignored setting, then
//!    `Config::validate` checks ranges and cross-field rules.
//!
//! Defaults live once, in the `#[serde(default = ...)]` functions below, and
//! the top-level `config.toml` documents each of them key by key.
//!
//! Secrets (the API key, webhook URLs — Slack's carry a token in the path —
//! and signing secrets) are [`SecretString`]s: their `Debug` is redacted, and
//! no error message here ever quotes their value.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, de};

pub use crate::delivery::{DeliveryConfig, TargetConfig, TargetKind};
use crate::poomgo::MAX_PAGE_SIZE;
use crate::status::{CourierEntry, StatusEntry};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where template overrides live, relative to the config file.
    #[serde(default = "default_templates_dir")]
    pub templates_dir: PathBuf,
    /// The one merchant's account when there is no `[[merchants]]` (see
    /// [`Config::merchants`]); absent when there are.
    #[serde(default)]
    pub poomgo: PoomgoConfig,
    /// Several Poomgo accounts in one process, each with its own key, plan
    /// and targets (see [`crate::merchant`]).
    #[serde(default)]
    pub merchants: Vec<crate::merchant::MerchantConfig>,
    /// Requests in flight to the Poomgo API at once, over every merchant.
    #[serde(default = "default_upstream_in_flight")]
    pub upstream_in_flight: usize,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Which windows a poll reads, how often (see [`crate::poomgo::plan`]).
    #[serde(default)]
    pub plan: crate::poomgo::plan::PlanConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Extra or overriding entries of the cargo status table.
    #[serde(default)]
    pub statuses: Vec<StatusEntry>,
    /// Extra or overriding couriers (tracking links).
    #[serde(default)]
    pub couriers: Vec<CourierEntry>,
    /// How long `run` lets in-flight sends and the current page finish on SIGTERM.
    #[serde(default = "default_shutdown_grace", deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    #[serde(default)]
    pub admin: AdminConfig,
    /// The folder of the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Which merchant this config is for: set by [`Config::merchants`], which
    /// gives each merchant its own `poomgo`, `plan` and `targets`.
    #[serde(skip)]
    pub merchant: crate::merchant::Merchant,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoomgoConfig {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(deserialize_with = "secret")]
    pub api_key: SecretString,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default = "default_lookback_days")]
    pub lookback_days: u32,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Attempts per page before a poll gives up (the first one included).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_retry_base", deserialize_with = "duration")]
    pub retry_base: Duration,
    #[serde(default = "default_retry_max", deserialize_with = "duration")]
    pub retry_max: Duration,
    /// Allow a plain `http://` base_url to a host other than this machine.
    #[serde(default)]
    pub allow_insecure: bool,
}

impl Default for PoomgoConfig {
    /// Only for a config with `[[merchants]]`, where the top-level
    /// `[poomgo]` is absent (validation makes sure it is one or the other).
    fn default() -> Self {
        PoomgoConfig {
            base_url: default_base_url(),
            api_key: SecretString::from(""),
            page_size: default_page_size(),
            lookback_days: default_lookback_days(),
            concurrency: default_concurrency(),
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            max_attempts: default_max_attempts(),
            retry_base: default_retry_base(),
            retry_max: default_retry_max(),
            allow_insecure: false,
        }
    }
}

/// The daemon's admin HTTP (console, `/api`, `/healthz`, `/metrics`); off
/// when `listen` is unset. Off loopback it needs a token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `127.0.0.1:9464`, or a port alone (`9464`), which binds to loopback.
    #[serde(default, deserialize_with = "listen_address")]
    pub listen: Option<std::net::SocketAddr>,
    /// When set, every console page and API call needs it (`Authorization:
    /// Bearer`, or the console's sign-in cookie). At least
    /// [`MIN_TOKEN_CHARS`] characters.
    #[serde(default, deserialize_with = "optional_secret")]
    pub token: Option<SecretString>,
    /// The name (`host` or `host:port`) the console is reached by through a
    /// proxy, allowed in `Host` beside the loopback names.
    #[serde(default)]
    pub public_host: Option<String>,
    /// How long a console sign-in lasts.
    #[serde(default = "default_session_ttl", deserialize_with = "duration")]
    pub session_ttl: Duration,
    /// A request's headers must arrive within this, or the connection closes.
    #[serde(default = "default_header_timeout", deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// Connections open at once; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: None,
            token: None,
            public_host: None,
            session_ttl: default_session_ttl(),
            header_timeout: default_header_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_upstream_in_flight() -> usize {
    16
}
fn default_session_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_connections() -> usize {
    256
}

/// The shortest `admin.token` accepted: 32 characters, 128 bits or more
/// when made as the docs say (`openssl rand -hex 32`).
pub const MIN_TOKEN_CHARS: usize = 32;

impl AdminConfig {
    /// Checks the token, the public host and the session length; the error
    /// names the key within `[admin]`.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(token) = &self.token {
            let token = token.expose_secret();
            let chars = token.chars().count();
            if token.trim().is_empty() {
                return Err((
                    "token",
                    format!(
                        "is empty (is its variable set?): expected at least {MIN_TOKEN_CHARS} random characters; make one with `openssl rand -hex 32`, or remove `token` to keep the console on loopback only"
                    ),
                ));
            }
            if chars < MIN_TOKEN_CHARS || token.trim() != token {
                return Err((
                    "token",
                    format!(
                        "is too short ({chars} characters) or has spaces at its ends: expected at least {MIN_TOKEN_CHARS} random characters; make one with `openssl rand -hex 32`"
                    ),
                ));
            }
        }
        if self.public_host.is_some() && self.token.is_none() {
            return Err((
                "public_host",
                "needs `admin.token`: a console reached by a public name must ask for the token"
                    .into(),
            ));
        }
        if let Some(host) = &self.public_host
            && (host.is_empty() || host.contains(['/', ' ', '@']) || host.contains("://"))
        {
            return Err((
                "public_host",
                format!(
                    "`{host}` is not a host name: expected the name the proxy serves the console under, like \"notifier.example.com\" (no scheme, no path)"
                ),
            ));
        }
        if self.session_ttl < Duration::from_secs(1)
            || self.session_ttl > Duration::from_secs(30 * 86_400)
        {
            return Err(("session_ttl", "is out of range: expected 1s to 30d".into()));
        }
        if self.header_timeout < Duration::from_millis(100)
            || self.header_timeout > Duration::from_secs(300)
        {
            return Err((
                "header_timeout",
                "is out of range: expected 100ms to 5m".into(),
            ));
        }
        if !(4..=10_000).contains(&self.max_connections) {
            return Err((
                "max_connections",
                format!(
                    "{} is out of range: expected 4 to 10000",
                    self.max_connections
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    #[serde(default = "default_cron")]
    pub cron: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            cron: default_cron(),
            timezone: default_timezone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// sled's page cache in MiB (sled's own default is 1 GiB).
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// Writes stop (the poll fails, nothing is lost) below this much free disk.
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
    /// Days the event history (the console's timelines) is kept; 0: none.
    #[serde(default = "default_history_days")]
    pub history_days: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_store_path(),
            retention_days: default_retention_days(),
            cache_mb: default_cache_mb(),
            min_free_mb: default_min_free_mb(),
            history_days: default_history_days(),
        }
    }
}

fn default_history_days() -> u32 {
    30
}
fn default_templates_dir() -> PathBuf {
    "templates".into()
}
fn default_base_url() -> String {
    "https://api.poomgo.com".into()
}
fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}
fn default_lookback_days() -> u32 {
    14
}
fn default_concurrency() -> usize {
    2
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_attempts() -> u32 {
    5
}
fn default_retry_base() -> Duration {
    Duration::from_millis(500)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(30)
}
fn default_cron() -> String {
    "0 */5 * * * *".into()
}
fn default_timezone() -> String {
    "Asia/Seoul".into()
}
fn default_store_path() -> PathBuf {
    "data/poomgo-notifier".into()
}
fn default_retention_days() -> u32 {
    30
}
/// sled keeps about twice its nominal cache in memory or more (it counts
/// nodes by their size on disk, and they are bigger in memory): 8 MiB kept a 100,000-order baseline
/// under 64 MiB of RSS (see docs/performance.md).
pub const DEFAULT_CACHE_MB: u64 = 8;

fn default_cache_mb() -> u64 {
    DEFAULT_CACHE_MB
}
fn default_min_free_mb() -> u64 {
    crate::store::DEFAULT_MIN_FREE_MB
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}
pub(crate) fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    Ok(SecretString::from(String::deserialize(d)?))
}

pub(crate) fn optional_secret<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
}

/// `admin.listen`: an address with a port, or a port alone (loopback).
fn listen_address<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::net::SocketAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Listen {
        Port(u16),
        Text(String),
    }
    let loopback = |port| std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    match Listen::deserialize(d)? {
        Listen::Port(port) => Ok(Some(loopback(port))),
        Listen::Text(t) => match t.trim().parse::<u16>() {
            Ok(port) => Ok(Some(loopback(port))),
            Err(_) => t.trim().parse().map(Some).map_err(|_| {
                de::Error::custom(format!(
                    "`{t}` is not an address like \"127.0.0.1:9464\" or a port like \"9464\" (which listens on loopback)"
                ))
            }),
        },
    }
}

fn parse_duration<E: de::Error>(s: &str) -> Result<Duration, E> {
    humantime::parse_duration(s).map_err(|e| {
        de::Error::custom(format!(
            "`{s}` is not a duration like \"500ms\", \"30s\" or \"5m\" ({e})"
        ))
    })
}

/// "500ms", "30s", "5m", "2h".
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration(&String::deserialize(d)?)
}

pub(crate) fn optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_duration(&s))
        .transpose()
}

/// `["5s", "5m", "30m"]`.
pub(crate) fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_duration(s))
        .collect()
}

pub(crate) fn optional_durations<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Duration>>, D::Error> {
    Option::<Vec<String>>::deserialize(d)?
        .map(|v| v.iter().map(|s| parse_duration(s)).collect())
        .transpose()
}

/// A configuration problem: which file, which key, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {}{message}", key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    pub key: Option<String>,
    pub message: String,
}

impl Config {
    /// Reads, substitutes, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, &file, base_dir, &|name| std::env::var(name).ok())
    }

    /// Parses config text; `env` looks variables up (tests pass their own).
    pub fn parse(
        text: &str,
        file: &str,
        base_dir: PathBuf,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let err = |key: Option<String>, message: String| ConfigError {
            file: file.to_owned(),
            key,
            message,
        };
        let mut value: toml::Value = toml::from_str(text)
            .map_err(|e| err(None, e.message().to_owned() + &location(text, e.span())))?;
        substitute(&mut value, &mut String::new(), env).map_err(|(key, m)| err(Some(key), m))?;
        let has_poomgo = value_has(&value, "poomgo");
        let mut config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            // toml appends "\nin `table`"; the path already says where.
            let message = e
                .into_inner()
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            match (path.as_str(), message.strip_prefix("missing field `")) {
                (".", Some(rest)) => err(
                    Some(rest.trim_end_matches('`').to_owned()),
                    "is required".into(),
                ),
                (_, Some(rest)) => err(
                    Some(format!("{path}.{}", rest.trim_end_matches('`'))),
                    "is required".into(),
                ),
                (".", None) => err(None, message),
                _ => err(Some(path), message),
            }
        })?;
        config.base_dir = base_dir;
        config
            .validate(has_poomgo)
            .map_err(|(key, m)| err(Some(key), m))?;
        Ok(config)
    }

    /// One config per merchant, in file order: its own `poomgo`, `plan`
    /// (the top-level one when it has none) and `targets` (its own, then
    /// the shared ones that list it or list no merchants). A config with no
    /// `[[merchants]]` is the one merchant [`crate::merchant::DEFAULT`].
    pub fn merchants(&self) -> Vec<Config> {
        if self.merchants.is_empty() {
            // Today's shape, or one merchant's config already.
            return vec![self.clone()];
        }
        let of = self.merchants.len();
        self.merchants
            .iter()
            .map(|m| {
                let mut one = self.clone();
                one.merchants = Vec::new();
                one.poomgo = m.poomgo.clone();
                if let Some(plan) = &m.plan {
                    one.plan = plan.clone();
                }
                one.targets = m
                    .targets
                    .iter()
                    .chain(self.targets.iter().filter(|t| {
                        t.merchants
                            .as_ref()
                            .is_none_or(|names| names.contains(&m.name))
                    }))
                    .cloned()
                    .collect();
                one.merchant = crate::merchant::Merchant {
                    name: m.name.clone(),
                    display_name: m.display_name.clone().unwrap_or_else(|| m.name.clone()),
                    of,
                };
                one
            })
            .collect()
    }

    /// The merchant called `name`, or an error listing the names there are
    /// (for `--merchant`).
    pub fn merchant_named(&self, name: &str) -> anyhow::Result<Config> {
        let all = self.merchants();
        let names: Vec<String> = all.iter().map(|c| c.merchant.name.clone()).collect();
        all.into_iter()
            .find(|c| c.merchant.name == name)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no merchant is called `{name}`: the config has {}",
                    names.join(", ")
                )
            })
    }

    /// The whole file: either one top-level `[poomgo]` or `[[merchants]]`,
    /// then every merchant's own config.
    fn validate(&self, has_poomgo: bool) -> Result<(), (String, String)> {
        let bad = |key: &str, m: String| Err((key.to_owned(), m));
        if self.merchants.is_empty() {
            if !has_poomgo {
                return bad(
                    "poomgo",
                    "is required: expected a `[poomgo]` table with the merchant's `api_key` (or `[[merchants]]`, one per Poomgo account)".into(),
                );
            }
            for (i, t) in self.targets.iter().enumerate() {
                if t.merchants.is_some() {
                    return bad(
                        &format!("targets[{i}].merchants"),
                        "is only for a config with `[[merchants]]`".into(),
                    );
                }
            }
            return self.validate_merchant();
        }
        if has_poomgo {
            return bad(
                "poomgo",
                "cannot be used with `[[merchants]]`: give each merchant its own `[merchants.poomgo]`".into(),
            );
        }
        if !(1..=1024).contains(&self.upstream_in_flight) {
            return bad(
                "upstream_in_flight",
                format!(
                    "{} is out of range: expected 1 to 1024",
                    self.upstream_in_flight
                ),
            );
        }
        let mut names = HashSet::new();
        for (i, m) in self.merchants.iter().enumerate() {
            crate::merchant::check_name(&m.name)
                .map_err(|e| (format!("merchants[{i}].name"), e))?;
            if !names.insert(m.name.as_str()) {
                return bad(
                    &format!("merchants[{i}].name"),
                    format!(
                        "`{}` is used by two merchants: names must be unique",
                        m.name
                    ),
                );
            }
            for (j, t) in m.targets.iter().enumerate() {
                if t.merchants.is_some() {
                    return bad(
                        &format!("merchants[{i}].targets[{j}].merchants"),
                        "is only for a top-level `[[targets]]` entry (a merchant's own target receives only its events)".into(),
                    );
                }
                crate::delivery::targets::validate(t)
                    .map_err(|(k, m)| (format!("merchants[{i}].targets[{j}].{k}"), m))?;
            }
        }
        for (i, t) in self.targets.iter().enumerate() {
            for name in t.merchants.iter().flatten() {
                if !names.contains(name.as_str()) {
                    return bad(
                        &format!("targets[{i}].merchants"),
                        format!("`{name}` is not the name of a merchant"),
                    );
                }
            }
        }
        for (i, one) in self.merchants().iter().enumerate() {
            one.validate_merchant().map_err(|(key, m)| {
                let within = ["poomgo", "plan"]
                    .iter()
                    .any(|s| key.starts_with(&format!("{s}.")));
                if within {
                    (format!("merchants[{i}].{key}"), m)
                } else {
                    (key, format!("{m} (merchant `{}`)", one.merchant.name))
                }
            })?;
        }
        Ok(())
    }

    /// Ranges and cross-field rules serde cannot express, for one merchant's
    /// config.
    fn validate_merchant(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, m: String| Err((key.to_owned(), m));
        let p = &self.poomgo;
        if !(1..=MAX_PAGE_SIZE).contains(&p.page_size) {
            return bad(
                "poomgo.page_size",
                format!(
                    "{} is out of range: expected 1 to {MAX_PAGE_SIZE} (the API's maximum)",
                    p.page_size
                ),
            );
        }
        if !(1..=16).contains(&p.concurrency) {
            return bad(
                "poomgo.concurrency",
                format!("{} is out of range: expected 1 to 16", p.concurrency),
            );
        }
        if !(1..=366).contains(&p.lookback_days) {
            return bad(
                "poomgo.lookback_days",
                format!("{} is out of range: expected 1 to 366", p.lookback_days),
            );
        }
        if !(1..=20).contains(&p.max_attempts) {
            return bad(
                "poomgo.max_attempts",
                format!("{} is out of range: expected 1 to 20", p.max_attempts),
            );
        }
        let hour = Duration::from_secs(3600);
        for (key, value, min) in [
            (
                "poomgo.connect_timeout",
                p.connect_timeout,
                Duration::from_millis(10),
            ),
            (
                "poomgo.request_timeout",
                p.request_timeout,
                Duration::from_millis(10),
            ),
            ("poomgo.retry_base", p.retry_base, Duration::from_millis(1)),
            ("poomgo.retry_max", p.retry_max, Duration::from_millis(1)),
            ("shutdown_grace", self.shutdown_grace, Duration::ZERO),
        ] {
            if value < min || value > hour {
                return bad(
                    key,
                    format!(
                        "{} is out of range: expected {} to 1h",
                        humantime::format_duration(value),
                        humantime::format_duration(min)
                    ),
                );
            }
        }
        if p.retry_base > p.retry_max {
            return bad(
                "poomgo.retry_base",
                "is longer than `poomgo.retry_max`".into(),
            );
        }
        if let Err(m) = check_url(&p.base_url) {
            return bad("poomgo.base_url", format!("`{}` {m}", p.base_url));
        }
        if let Err(m) = check_transport(&p.base_url, p.allow_insecure) {
            return bad("poomgo.base_url", format!("`{}` {m}", p.base_url));
        }
        if p.api_key.expose_secret().trim().is_empty() {
            return bad(
                "poomgo.api_key",
                "is empty: expected the merchant's Poomgo API key".into(),
            );
        }
        if self.store.cache_mb == 0 {
            return bad("store.cache_mb", "expected at least 1 (MiB)".into());
        }
        if self.store.retention_days == 0 {
            return bad("store.retention_days", "expected at least 1".into());
        }
        self.admin
            .validate()
            .map_err(|(k, m)| (format!("admin.{k}"), m))?;
        if let Some(addr) = self.admin.listen
            && !addr.ip().is_loopback()
            && self.admin.token.is_none()
        {
            return bad(
                "admin.listen",
                format!(
                    "{addr} is not a loopback address and `admin.token` is not set: anyone who can reach it could read order history and replay events. Set `admin.token = \"${{ADMIN_TOKEN}}\"`, or listen on 127.0.0.1 and reach the console through an SSH tunnel"
                ),
            );
        }
        if self.store.history_days > 3660 {
            return bad(
                "store.history_days",
                format!(
                    "{} is out of range: expected 0 (no history) to 3660",
                    self.store.history_days
                ),
            );
        }
        crate::schedule::validate(&self.schedule).map_err(|(k, m)| (format!("schedule.{k}"), m))?;
        self.plan
            .validate(p.lookback_days)
            .map_err(|(k, m)| (format!("plan.{k}"), m))?;
        self.delivery
            .validate()
            .map_err(|(k, m)| (format!("delivery.{k}"), m))?;
        let mut names = HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            crate::delivery::targets::validate(t)
                .map_err(|(k, m)| (format!("targets[{i}].{k}"), m))?;
            if !names.insert(t.name.as_str()) {
                return bad(
                    &format!("targets[{i}].name"),
                    format!("`{}` is used by two targets: names must be unique", t.name),
                );
            }
        }
        if let Some(to) = &self.delivery.alerts_to {
            match self.targets.iter().find(|t| &t.name == to) {
                None => {
                    return bad(
                        "delivery.alerts_to",
                        format!("`{to}` is not the name of a target"),
                    );
                }
                Some(t) if !t.kind.is_chat() => {
                    return bad(
                        "delivery.alerts_to",
                        format!(
                            "`{to}` is a {} target: alerts go to a chat target (slack)",
                            t.kind
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        for (i, s) in self.statuses.iter().enumerate() {
            if s.code.trim().is_empty() {
                return bad(&format!("statuses[{i}].code"), "is empty".into());
            }
        }
        for (i, c) in self.couriers.iter().enumerate() {
            if c.name.trim().is_empty() {
                return bad(&format!("couriers[{i}].name"), "is empty".into());
            }
            if !c.tracking_url.contains("{invoiceCode}") {
                return bad(
                    &format!("couriers[{i}].tracking_url"),
                    "has no `{invoiceCode}`: expected the page's URL with `{invoiceCode}` where the tracking number goes".into(),
                );
            }
            if let Err(m) = check_url(&c.tracking_url.replace("{invoiceCode}", "0")) {
                return bad(
                    &format!("couriers[{i}].tracking_url"),
                    format!("`{}` {m}", c.tracking_url),
                );
            }
        }
        Ok(())
    }

    pub fn templates_path(&self) -> PathBuf {
        self.base_dir.join(&self.templates_dir)
    }

    /// The longest gap between two ticks of the schedule.
    pub fn tick_interval(&self) -> Duration {
        let tz = self
            .schedule
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Seoul);
        match crate::schedule::parse_cron(&self.schedule.cron) {
            Ok(cron) => crate::schedule::longest_interval(&cron, tz, chrono::Utc::now()),
            Err(_) => Duration::from_secs(300),
        }
    }

    pub fn store_path(&self) -> PathBuf {
        self.base_dir.join(&self.store.path)
    }
}

/// Whether the TOML document has a top-level `key`.
fn value_has(value: &toml::Value, key: &str) -> bool {
    value.as_table().is_some_and(|t| t.contains_key(key))
}

pub(crate) fn check_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err("is not an http(s) URL".into()),
        Err(e) => Err(format!("is not a valid URL ({e})")),
    }
}

/// Customer data and secrets never travel in clear text by accident: a URL
/// must be `https://` unless its host is this machine (`localhost`,
/// 127.0.0.0/8, `::1`) or the key's `allow_insecure` says otherwise. The
/// message never quotes the URL (it may carry a token).
pub(crate) fn check_transport(url: &str, allow_insecure: bool) -> Result<(), String> {
    let Ok(u) = reqwest::Url::parse(url) else {
        return Ok(()); // check_url reports it
    };
    if u.scheme() == "https" || allow_insecure {
        return Ok(());
    }
    let loopback = u.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if loopback {
        Ok(())
    } else {
        Err(
            "uses http:// to a host that is not this machine: expected https, so customer data and tokens are not sent in clear text (set `allow_insecure = true` next to it to allow it anyway)"
                .into(),
        )
    }
}

fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| {
        let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
        format!(" (line {line})")
    })
    .unwrap_or_default()
}

/// Replaces `${VAR}` in every string value, depth first. `path` is the key
/// path so far, for the error.
fn substitute(
    value: &mut toml::Value,
    path: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match value {
        toml::Value::String(s) if s.contains("${") => {
            *s = expand(s, env).map_err(|m| (path.clone(), m))?;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                substitute(item, path, env)?;
                path.truncate(len);
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                substitute(v, path, env)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "has `${` without a closing `}`: expected `${VAR}`".to_owned())?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`${{{name}}}` is not a variable name: expected letters, digits and `_`"
            ));
        }
        match env(name) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(format!(
                    "environment variable {name} is not set (the value is `${{{name}}}`)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Keys of `text` that hold a secret written in plain text instead of a
/// `${VAR}`: `poomgo.api_key`, `admin.token`, a target's `secret`, and the URL
/// of a Slack or JANDI target (their URLs carry the token). Only the key is
/// returned, never the value.
pub fn plaintext_secrets(text: &str) -> Vec<String> {
    let Ok(value) = toml::from_str::<toml::Value>(text) else {
        return Vec::new();
    };
    let literal = |v: Option<&toml::Value>| {
        v.and_then(toml::Value::as_str)
            .is_some_and(|s| !s.trim().is_empty() && !s.contains("${"))
    };
    let mut keys = Vec::new();
    if literal(value.get("poomgo").and_then(|p| p.get("api_key"))) {
        keys.push("poomgo.api_key".to_owned());
    }
    if literal(value.get("admin").and_then(|a| a.get("token"))) {
        keys.push("admin.token".to_owned());
    }
    for (i, t) in value
        .get("targets")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if literal(t.get("secret")) {
            keys.push(format!("targets[{i}].secret"));
        }
        let chat = matches!(
            t.get("kind").and_then(toml::Value::as_str),
            Some("slack" | "jandi")
        );
        if chat && literal(t.get("url")) {
            keys.push(format!("targets[{i}].url"));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[poomgo]\napi_key = \"${KEY}\"\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "config.toml", PathBuf::new(), &|n| match n {
            "KEY" => Some("secret-key-value".into()),
            "ADMIN" => Some("0123456789abcdef0123456789abcdef".into()),
            "EMPTY" => Some(String::new()),
            "SHORT" => Some("t".into()),
            "HOOK" => Some("https://hooks.slack.com/services/T000/B000/XXXXSECRET".into()),
            _ => None,
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_shipped_config_toml_parses_with_its_variables_set() {
        let text = include_str!("../config.toml");
        let config = Config::parse(text, "config.toml", PathBuf::new(), &|n| match n {
            "POOMGO_API_KEY" => Some("k".into()),
            "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T/B/X".into()),
            "ERP_WEBHOOK_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.targets.len(), 2);
        assert_eq!(config.poomgo.page_size, 500);
        assert_eq!(config.schedule.cron, "0 */5 * * * *");
    }

    #[test]
    fn defaults_apply() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.poomgo.base_url, "https://api.poomgo.com");
        assert_eq!(
            (
                c.poomgo.page_size,
                c.poomgo.lookback_days,
                c.poomgo.concurrency
            ),
            (500, 14, 2)
        );
        assert_eq!(c.poomgo.request_timeout, Duration::from_secs(30));
        assert_eq!((c.store.retention_days, c.store.cache_mb), (30, 8));
        assert_eq!(c.poomgo.api_key.expose_secret(), "secret-key-value");
    }

    #[test]
    fn the_admin_listener_takes_an_address_or_a_port_on_loopback() {
        for (value, want) in [
            ("9464", "127.0.0.1:9464"),
            ("\"9464\"", "127.0.0.1:9464"),
            ("\"127.0.0.1:9000\"", "127.0.0.1:9000"),
            ("\"[::1]:9000\"", "[::1]:9000"),
        ] {
            let c = parse(&format!("{MINIMAL}[admin]\nlisten = {value}\n")).unwrap();
            assert_eq!(c.admin.listen.unwrap().to_string(), want, "{value}");
        }
        let e = parse(&format!("{MINIMAL}[admin]\nlisten = \"localhost\"\n")).unwrap_err();
        assert!(e.contains("admin.listen") && e.contains("9464"), "{e}");
        // Off loopback without a token: refused, naming both keys.
        let e = parse(&format!("{MINIMAL}[admin]\nlisten = \"0.0.0.0:9464\"\n")).unwrap_err();
        assert!(
            e.contains("admin.listen") && e.contains("admin.token"),
            "{e}"
        );
        let ok = parse(&format!(
            "{MINIMAL}[admin]\nlisten = \"0.0.0.0:9464\"\ntoken = \"${{ADMIN}}\"\n"
        ));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn an_empty_or_short_admin_token_is_refused_saying_how_to_make_one() {
        for (var, listen) in [
            ("EMPTY", "0.0.0.0:9464"),
            ("EMPTY", "9464"),
            ("SHORT", "0.0.0.0:9464"),
            ("KEY", "9464"),
        ] {
            let e = parse(&format!(
                "{MINIMAL}[admin]\nlisten = \"{listen}\"\ntoken = \"${{{var}}}\"\n"
            ))
            .unwrap_err();
            assert!(
                e.contains("`admin.token`") && e.contains("openssl rand -hex 32"),
                "{var}: {e}"
            );
            assert!(!e.contains("secret-key-value"), "{e}");
        }
        let e = parse(&format!(
            "{MINIMAL}[admin]\ntoken = \"${{ADMIN}}\"\npublic_host = \"https://x.example\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("`admin.public_host`"), "{e}");
        let c = parse(&format!(
            "{MINIMAL}[admin]\ntoken = \"${{ADMIN}}\"\npublic_host = \"notifier.example.com\"\nsession_ttl = \"1h\"\n"
        ))
        .unwrap();
        assert_eq!(c.admin.session_ttl, Duration::from_secs(3600));
        assert_eq!(c.admin.public_host.as_deref(), Some("notifier.example.com"));
    }

    #[test]
    fn an_unknown_key_names_file_and_key() {
        let e = parse(&format!("{MINIMAL}page_sise = 100\n")).unwrap_err();
        assert!(
            e.starts_with(
                "config.toml: `poomgo.page_sise`: unknown field `page_sise`, expected one of"
            ),
            "{e}"
        );
        let e = parse(&format!("{MINIMAL}[stor]\npath = \"x\"\n")).unwrap_err();
        assert!(e.contains("unknown field `stor`"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_key_and_the_expected_type() {
        let e = parse(&format!("{MINIMAL}page_size = \"lots\"\n")).unwrap_err();
        assert!(
            e.starts_with(
                "config.toml: `poomgo.page_size`: invalid type: string \"lots\", expected u32"
            ),
            "{e}"
        );
        let e = parse(&format!("{MINIMAL}request_timeout = \"soon\"\n")).unwrap_err();
        assert!(
            e.contains("`poomgo.request_timeout`") && e.contains("is not a duration"),
            "{e}"
        );
    }

    #[test]
    fn an_unset_variable_names_the_key_and_the_variable() {
        let e = parse("[poomgo]\napi_key = \"${NOPE}\"\n").unwrap_err();
        assert_eq!(
            e,
            "config.toml: `poomgo.api_key`: environment variable NOPE is not set (the value is `${NOPE}`)"
        );
        let e = parse(&format!(
            "{MINIMAL}[[targets]]\nname = \"a\"\nkind = \"slack\"\nurl = \"${{MISSING_HOOK}}\"\n"
        ))
        .unwrap_err();
        assert!(
            e.starts_with("config.toml: `targets[0].url`: environment variable MISSING_HOOK"),
            "{e}"
        );
    }

    #[test]
    fn an_invalid_cron_or_range_is_explained() {
        let e = parse(&format!("{MINIMAL}[schedule]\ncron = \"*/5 * * * *\"\n")).unwrap_err();
        assert!(
            e.starts_with("config.toml: `schedule.cron`: `*/5 * * * *` is not a valid schedule")
                && e.contains("seconds first"),
            "{e}"
        );
        let e = parse(&format!("{MINIMAL}page_size = 501\n")).unwrap_err();
        assert!(e.contains("`poomgo.page_size`: 501 is out of range"), "{e}");
        let e = parse(&format!(
            "{MINIMAL}[schedule]\ntimezone = \"Mars/Olympus\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("`schedule.timezone`"), "{e}");
        assert!(
            parse("[poomgo]\n")
                .unwrap_err()
                .contains("`poomgo.api_key`: is required")
        );

        let e = parse(&format!("{MINIMAL}retry_max = \"100000y\"\n")).unwrap_err();
        assert!(
            e.contains("`poomgo.retry_max`") && e.contains("out of range"),
            "{e}"
        );
        let e = parse(&format!(
            "{MINIMAL}retry_base = \"1m\"\nretry_max = \"1s\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("`poomgo.retry_base`: is longer"), "{e}");
    }

    #[test]
    fn every_new_section_names_the_key_of_a_bad_value() {
        let target = "[[targets]]\nname = \"a\"\nkind = \"slack\"\nurl = \"${HOOK}\"\n";
        let cases = [
            (
                format!("{MINIMAL}[delivery]\nretry_schedule = [\"soon\"]\n"),
                "`delivery.retry_schedule`: `soon` is not a duration",
            ),
            (
                format!("{MINIMAL}[delivery]\njitter = 3.0\n"),
                "`delivery.jitter`",
            ),
            (
                format!("{MINIMAL}[delivery]\nalerts_to = \"nobody\"\n"),
                "`delivery.alerts_to`",
            ),
            (
                format!(
                    "{MINIMAL}[plan]\nwindows = [{{ name = \"x\", axis = \"closed\", days = 1, skip_days = 3 }}]\n"
                ),
                "`plan.windows[0].skip_days`",
            ),
            (
                format!(
                    "{MINIMAL}[plan]\nwindows = [{{ name = \"x\", axis = \"shipped\", days = 1 }}]\n"
                ),
                "`plan.windows[0].axis`",
            ),
            (
                format!("{MINIMAL}{target}categories = [\"lost\"]\n"),
                "`targets[0].categories`",
            ),
            (
                format!("{MINIMAL}{target}language = \"fr\"\n"),
                "`targets[0].language`",
            ),
            (
                format!("{MINIMAL}{target}rate_per_second = 0.0\n"),
                "`targets[0].rate_per_second`",
            ),
            (
                format!("{MINIMAL}{target}batch_max = 5\n"),
                "`targets[0].batch_max`",
            ),
            (
                format!(
                    "{MINIMAL}[[couriers]]\nname = \"경동택배\"\ntracking_url = \"https://x.test/t\"\n"
                ),
                "`couriers[0].tracking_url`",
            ),
            (
                format!("{MINIMAL}[store]\nmin_free_mb = \"lots\"\n"),
                "`store.min_free_mb`",
            ),
        ];
        for (text, key) in cases {
            let e = parse(&text).unwrap_err();
            assert!(e.contains(key), "{key}: {e}");
            assert!(!e.contains("XXXXSECRET"), "{e}");
        }
    }

    #[test]
    fn target_errors_never_quote_secrets() {
        let bad_secret = format!(
            "{MINIMAL}[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"https://erp.example.com/h\"\nsecret = \"not-a-whsec-abcdef\"\n"
        );
        let e = parse(&bad_secret).unwrap_err();
        assert!(
            e.contains("`targets[0].secret`") && !e.contains("not-a-whsec-abcdef"),
            "{e}"
        );
        let bad_url = format!(
            "{MINIMAL}[[targets]]\nname = \"cs\"\nkind = \"slack\"\nurl = \"hooks.slack.com/services/T000/XXXXSECRET\"\n"
        );
        let e = parse(&bad_url).unwrap_err();
        assert!(
            e.contains("`targets[0].url`") && !e.contains("XXXXSECRET"),
            "{e}"
        );
        let dup = format!(
            "{MINIMAL}[[targets]]\nname = \"a\"\nkind = \"slack\"\nurl = \"${{HOOK}}\"\n[[targets]]\nname = \"a\"\nkind = \"slack\"\nurl = \"${{HOOK}}\"\n"
        );
        assert!(parse(&dup).unwrap_err().contains("used by two targets"));
        let kinds = format!(
            "{MINIMAL}[[targets]]\nname = \"a\"\nkind = \"slack\"\nurl = \"${{HOOK}}\"\nevents = [\"invoice.exploded\"]\n"
        );
        let e = parse(&kinds).unwrap_err();
        assert!(
            e.contains("`targets[0].events[0]`") && e.contains("invoice.status_changed"),
            "{e}"
        );
        let debug = format!(
            "{:?}",
            parse(&format!(
                "{MINIMAL}[[targets]]\nname = \"a\"\nkind = \"slack\"\nurl = \"${{HOOK}}\"\n"
            ))
            .unwrap()
        );
        assert!(
            !debug.contains("XXXXSECRET") && !debug.contains("secret-key-value"),
            "{debug}"
        );
    }
}
