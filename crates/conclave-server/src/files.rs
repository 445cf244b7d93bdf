//! Files holding secrets.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// Creates `path` with mode 0600 (owner read/write only) and writes `bytes`.
/// Fails if the file exists: secrets are never silently overwritten.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
