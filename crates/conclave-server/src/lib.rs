//! The `conclave` server: HTTP API, storage, identity authority, join decisions and
//! the tamper-evident audit log, in one binary.
//!
//! The pure cores do the deciding (`conclave-policy`), chaining (`conclave-audit`) and
//! signing (`conclave-identity`); this crate is the driver around them. It owns the
//! clock ([`api::now`]), the sockets ([`serve`]), the SQLite file ([`store`]) and the
//! key files ([`setup`]), and passes time and facts into the cores as arguments.
//!
//! Layout: [`config`] parses `conclave.toml`; [`setup`] creates and opens a data
//! directory; [`api`] is the axum router (build it with [`api::app`] and drive it with
//! `oneshot` in tests); [`admin`] holds the CLI's administrative commands; [`serve`]
//! runs listeners and periodic work (audit head signing, probe reports).

pub mod accounts;
pub mod admin;
pub mod api;
pub mod audit_log;
pub mod call;
pub mod config;
pub mod files;
/// Entry points for fuzz targets (the cargo-fuzz project in `fuzz/` at the workspace
/// root). Not part of the stable API.
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod media;
pub mod password;
pub mod presence;
pub mod serve;
pub mod setup;
pub mod store;
pub mod tls;
