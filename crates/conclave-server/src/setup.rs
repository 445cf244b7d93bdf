//! Creating and opening a data directory: database, organisation key, development
//! certificate, first admin.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use conclave_identity::OrganisationKey;
use conclave_types::Role;

use crate::accounts;
use crate::api::now;
use crate::audit_log::AuditLog;
use crate::config::Config;
use crate::files::write_private;
use crate::store::Store;

/// What `init` made.
#[derive(Debug)]
pub struct Initialised {
    /// The first admin's name and password, when this run created the account.
    pub admin: Option<(String, String)>,
}

/// Makes whatever of the data directory is missing. Idempotent: an initialised
/// directory is left as it is, and no second admin is made.
pub async fn init(config: &Config, admin_name: &str) -> anyhow::Result<Initialised> {
    let dir = &config.storage.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }

    let key_path = config.organisation_key_path();
    let new_key = !key_path.exists();
    if new_key {
        let key = OrganisationKey::generate(&mut rand::rngs::OsRng);
        write_private(&key_path, key.to_file_text().as_bytes())?;
    }
    if config.tls.certificate.is_none() {
        let (cert, key) = config.tls_paths();
        if !cert.exists() || !key.exists() {
            crate::tls::generate_dev_certificate(&cert, &key)?;
        }
    }

    let key = Arc::new(load_organisation_key(&key_path)?);
    let store = Store::open(&config.database_path(), true).await?;
    let audit = AuditLog::new(store.clone(), Arc::clone(&key));
    if new_key {
        audit
            .note(
                now(),
                "operator:cli",
                "system.init",
                "organisation",
                "ok",
                vec![format!("organisation key {}", key.public())],
            )
            .await?;
    }

    let mut admin = None;
    if store.count_users().await? == 0 {
        let (_, password) = accounts::create(
            &store,
            &audit,
            "operator:cli",
            admin_name,
            "Administrator",
            Role::Admin,
            None,
        )
        .await?;
        admin = password.map(|p| (admin_name.to_string(), p));
    }
    audit.sign_head(now()).await?;
    store.close().await;
    Ok(Initialised { admin })
}

/// Reads the organisation key, refusing a file that others can read.
pub fn load_organisation_key(path: &Path) -> anyhow::Result<OrganisationKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} is readable by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    OrganisationKey::from_file_text(&text)
        .with_context(|| format!("{} is not an organisation key", path.display()))
}

/// An opened data directory.
#[derive(Debug)]
pub struct DataDir {
    /// The database.
    pub store: Store,
    /// The organisation key.
    pub key: Arc<OrganisationKey>,
    /// The audit log writer.
    pub audit: AuditLog,
}

/// Opens an initialised data directory.
pub async fn open(config: &Config) -> anyhow::Result<DataDir> {
    let db = config.database_path();
    if !db.exists() {
        bail!(
            "{} does not exist; run `conclave init` (or `conclave serve`, which initialises) first",
            db.display()
        );
    }
    let key = Arc::new(load_organisation_key(&config.organisation_key_path())?);
    let store = Store::open(&db, false).await?;
    let audit = AuditLog::new(store.clone(), Arc::clone(&key));
    Ok(DataDir { store, key, audit })
}
