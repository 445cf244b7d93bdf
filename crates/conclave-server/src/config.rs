//! The one configuration file, `conclave.toml`.
//!
//! Every setting has a default, so Conclave runs with no file at all; the shipped
//! `conclave.example.toml` documents each one and is tested to parse to exactly these
//! defaults. Unknown keys are errors: a typo in a security setting must stop the
//! server, not be ignored. Operators override the usual suspects with environment
//! variables (`CONCLAVE_DATA_DIR`, `CONCLAVE_LISTEN`, `CONCLAVE_PUBLIC_URL`), which the
//! CLI applies after loading.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use conclave_policy::{default_profiles, IpNet, NamedNetwork, Profile, ProfileSpec};
use conclave_types::Classification;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listening sockets, public URL, proxies, request limits.
    pub server: ServerConfig,
    /// The SFU's UDP socket.
    pub media: MediaConfig,
    /// The browser app's files.
    pub web: WebConfig,
    /// Where data lives.
    pub storage: StorageConfig,
    /// Certificate and key.
    pub tls: TlsConfig,
    /// The organisation this server is the identity authority for.
    pub organisation: OrganisationConfig,
    /// Sign-in sessions and login throttling.
    pub sessions: SessionConfig,
    /// Rate limits on meeting lookups.
    pub limits: LimitsConfig,
    /// Device credentials.
    pub devices: DeviceConfig,
    /// Join challenges and tickets.
    pub join: JoinConfig,
    /// Audit log signing and reporting.
    pub audit: AuditConfig,
    /// Named address ranges that profiles call trusted.
    pub networks: BTreeMap<String, Vec<IpNet>>,
    /// Policy profiles by classification; the built-in four are added where missing.
    pub profiles: BTreeMap<Classification, ProfileSpec>,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Addresses to listen on (HTTPS).
    pub listen: Vec<SocketAddr>,
    /// The URL people open; printed at start.
    pub public_url: String,
    /// Reverse proxies whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

/// `[media]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// The one UDP address all calls' media uses (ICE-lite: it is also the only candidate
    /// participants are given, so it must be a concrete address they can reach).
    pub listen: SocketAddr,
    /// Append every frame the SFU forwards, as the SFU sees it, to this file (JSON lines:
    /// meeting, participant, kind, base64 payload). Off by default. What it records is what a
    /// compromised server could record: SFrame ciphertext behind codec headers. For audits
    /// showing that, and for tests; it grows fast.
    pub tap: Option<std::path::PathBuf>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3478)),
            tap: None,
        }
    }
}

/// `[web]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// The built browser app (`web/dist`, made by `npm run build` in `web/`): served at `/`,
    /// every path outside `/api` answered with its `index.html`.
    pub dir: PathBuf,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("web/dist"),
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Holds `conclave.db`, `organisation.key` and `tls/`.
    pub data_dir: PathBuf,
}

/// `[tls]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; unset means the self-signed one made by `conclave init`.
    pub certificate: Option<PathBuf>,
    /// PEM private key for `certificate`.
    pub private_key: Option<PathBuf>,
}

/// `[organisation]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrganisationConfig {
    /// Shown to users and written into every device credential.
    pub name: String,
}

/// `[sessions]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// How long a sign-in lasts.
    pub lifetime_minutes: u32,
    /// Failed sign-ins allowed (per account and per client address) before backoff starts.
    pub free_login_attempts: u32,
    /// First backoff after the free attempts; doubles with every further failure.
    pub login_backoff_base_seconds: u32,
    /// Longest backoff.
    pub login_backoff_max_seconds: u32,
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Meeting requests per minute from one client address.
    pub meeting_lookups_per_minute_per_client: u32,
    /// Meeting requests per minute by one user.
    pub meeting_lookups_per_minute_per_user: u32,
}

/// `[devices]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Lifetime of a device credential; devices fetch a fresh one before it ends.
    pub credential_lifetime_days: u32,
    /// Lifetime of an admin-issued enrolment token.
    pub enrolment_token_lifetime_hours: u32,
}

/// `[join]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JoinConfig {
    /// How long a join challenge may be answered.
    pub challenge_lifetime_seconds: u32,
    /// How long a join ticket may be presented to signalling.
    pub ticket_lifetime_seconds: u32,
}

/// `[audit]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often the log head is signed (when it moved); it is also signed at shutdown.
    pub sign_interval_seconds: u32,
    /// Refused meeting lookups are summed per client and written once per this period.
    pub probe_report_interval_seconds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            media: MediaConfig::default(),
            web: WebConfig::default(),
            storage: StorageConfig::default(),
            tls: TlsConfig::default(),
            organisation: OrganisationConfig::default(),
            sessions: SessionConfig::default(),
            limits: LimitsConfig::default(),
            devices: DeviceConfig::default(),
            join: JoinConfig::default(),
            audit: AuditConfig::default(),
            networks: BTreeMap::from([(
                "office".to_string(),
                vec!["127.0.0.1/32".parse().expect("literal CIDR")],
            )]),
            profiles: BTreeMap::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                SocketAddr::from(([127, 0, 0, 1], 8443)),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 8443)),
            ],
            public_url: "https://127.0.0.1:8443".to_string(),
            trusted_proxies: Vec::new(),
            max_body_bytes: 64 * 1024,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("conclave-data"),
        }
    }
}

impl Default for OrganisationConfig {
    fn default() -> Self {
        Self {
            name: "Conclave".to_string(),
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            lifetime_minutes: 12 * 60,
            free_login_attempts: 3,
            login_backoff_base_seconds: 1,
            login_backoff_max_seconds: 15 * 60,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            meeting_lookups_per_minute_per_client: 120,
            meeting_lookups_per_minute_per_user: 120,
        }
    }
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            credential_lifetime_days: 30,
            enrolment_token_lifetime_hours: 72,
        }
    }
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            challenge_lifetime_seconds: 60,
            ticket_lifetime_seconds: 60,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            sign_interval_seconds: 60,
            probe_report_interval_seconds: 60,
        }
    }
}

/// Why the configuration cannot be used. Each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not valid TOML, or a key or value Conclave does not know.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Parsed, but the settings do not fit together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Checks what the types cannot: non-zero limits, a usable TLS pair, resolvable profiles.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.server.listen.is_empty() {
            return invalid("server.listen must name at least one address");
        }
        if self.server.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes must be at least 1024");
        }
        if self.tls.certificate.is_some() != self.tls.private_key.is_some() {
            return invalid("tls.certificate and tls.private_key must be set together");
        }
        if self.organisation.name.is_empty() || self.organisation.name.len() > 128 {
            return invalid("organisation.name must be 1 to 128 bytes");
        }
        let nonzero = [
            (self.sessions.lifetime_minutes, "sessions.lifetime_minutes"),
            (
                self.sessions.login_backoff_base_seconds,
                "sessions.login_backoff_base_seconds",
            ),
            (
                self.limits.meeting_lookups_per_minute_per_client,
                "limits.meeting_lookups_per_minute_per_client",
            ),
            (
                self.limits.meeting_lookups_per_minute_per_user,
                "limits.meeting_lookups_per_minute_per_user",
            ),
            (
                self.devices.credential_lifetime_days,
                "devices.credential_lifetime_days",
            ),
            (
                self.devices.enrolment_token_lifetime_hours,
                "devices.enrolment_token_lifetime_hours",
            ),
            (
                self.join.challenge_lifetime_seconds,
                "join.challenge_lifetime_seconds",
            ),
            (
                self.join.ticket_lifetime_seconds,
                "join.ticket_lifetime_seconds",
            ),
            (
                self.audit.sign_interval_seconds,
                "audit.sign_interval_seconds",
            ),
            (
                self.audit.probe_report_interval_seconds,
                "audit.probe_report_interval_seconds",
            ),
        ];
        if let Some((_, name)) = nonzero.iter().find(|(v, _)| *v == 0) {
            return Err(ConfigError::Invalid(format!(
                "{name} must be greater than 0"
            )));
        }
        self.profiles()?;
        Ok(())
    }

    /// Every profile by classification, network names resolved: the configured ones
    /// plus the built-in `open`, `internal`, `confidential` and `secret` where the file
    /// does not define them.
    pub fn profiles(&self) -> Result<BTreeMap<Classification, Profile>, ConfigError> {
        let networks: Vec<NamedNetwork> = self
            .networks
            .iter()
            .map(|(name, ranges)| NamedNetwork {
                name: name.clone(),
                ranges: ranges.clone(),
            })
            .collect();
        let mut specs = self.profiles.clone();
        for (name, spec) in default_profiles() {
            specs.entry(name).or_insert(spec);
        }
        specs
            .into_iter()
            .map(|(name, spec)| {
                let profile = Profile::resolve(&spec, &networks)
                    .map_err(|e| ConfigError::Invalid(format!("profiles.{name}: {e}")))?;
                Ok((name, profile))
            })
            .collect()
    }

    /// Whether `peer` is a reverse proxy whose `X-Forwarded-For` counts.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.server
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer))
    }

    /// `sessions.lifetime_minutes` as a duration.
    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.sessions.lifetime_minutes) * 60)
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.storage.data_dir.join("conclave.db")
    }

    /// The organisation key file (mode 0600).
    pub fn organisation_key_path(&self) -> PathBuf {
        self.storage.data_dir.join("organisation.key")
    }

    /// The certificate and key actually used: the configured pair or the dev pair.
    pub fn tls_paths(&self) -> (PathBuf, PathBuf) {
        match (&self.tls.certificate, &self.tls.private_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => (
                self.storage.data_dir.join("tls/cert.pem"),
                self.storage.data_dir.join("tls/key.pem"),
            ),
        }
    }

    /// Applies the environment variables operators expect to override.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(dir) = env("CONCLAVE_DATA_DIR") {
            self.storage.data_dir = PathBuf::from(dir);
        }
        if let Some(listen) = env("CONCLAVE_LISTEN") {
            self.server.listen = listen
                .split(',')
                .map(|a| a.trim().parse())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    ConfigError::Invalid(
                        "CONCLAVE_LISTEN must be comma-separated socket addresses such as 127.0.0.1:8443,[::1]:8443".into(),
                    )
                })?;
        }
        if let Some(url) = env("CONCLAVE_PUBLIC_URL") {
            self.server.public_url = url;
        }
        self.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_exactly_the_defaults() {
        let text = include_str!("../../../conclave.example.toml");
        let mut parsed =
            Config::from_toml(text, Path::new("conclave.example.toml")).expect("parses");
        let defaults = Config::default();
        assert_eq!(parsed.profiles().ok(), defaults.profiles().ok());
        parsed.profiles.clear();
        assert_eq!(parsed, defaults);
    }

    #[test]
    fn no_file_means_defaults_with_the_four_profiles() {
        let config = Config::from_toml("", Path::new("empty.toml")).expect("parses");
        let names: Vec<String> = config
            .profiles()
            .expect("resolve")
            .keys()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(names, ["confidential", "internal", "open", "secret"]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_precise_errors() {
        let cases = [
            ("[server]\nlisten_on = []\n", "unknown field `listen_on`"),
            ("[server]\nlisten = [\"nowhere\"]\n", "invalid socket address"),
            ("[networks]\noffice = [\"10.0.0.0/33\"]\n", "invalid IP address"),
            ("[sessions]\nlifetime_minutes = 0\n", "sessions.lifetime_minutes must be greater than 0"),
            ("[tls]\ncertificate = \"c.pem\"\n", "must be set together"),
            (
                "[profiles.x]\naudience = \"invitees\"\nlobby = \"none\"\ndevice_trust = \"managed\"\nuntrusted_network = \"deny\"\ntrusted_networks = [\"lab\"]\n",
                "profiles.x: trusted network `lab`",
            ),
            ("[profiles.Secret]\n", "classification"),
        ];
        for (text, expected) in cases {
            let err = Config::from_toml(text, Path::new("c.toml"))
                .expect_err(text)
                .to_string();
            assert!(err.contains(expected), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn environment_overrides_apply_and_are_checked() {
        let mut config = Config::default();
        config
            .apply_env(|k| match k {
                "CONCLAVE_LISTEN" => Some("127.0.0.1:9000, [::1]:9000".into()),
                "CONCLAVE_DATA_DIR" => Some("/var/lib/conclave".into()),
                _ => None,
            })
            .expect("valid");
        assert_eq!(config.server.listen.len(), 2);
        assert_eq!(config.storage.data_dir, PathBuf::from("/var/lib/conclave"));
        let err = config
            .apply_env(|k| (k == "CONCLAVE_LISTEN").then(|| "everywhere".into()))
            .expect_err("invalid");
        assert!(err.to_string().contains("CONCLAVE_LISTEN"));
    }
}
