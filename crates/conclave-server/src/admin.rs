//! Administration from the command line, working directly on the data directory:
//! accounts, devices and the audit log. Every change is audited as `operator:cli`.

use std::io::Write;

use anyhow::{bail, Context as _};
use conclave_types::{DeviceId, DeviceTrust, Role};

use crate::accounts;
use crate::api::now;
use crate::audit_log::{verify_stored, VerifyFailure};
use crate::config::Config;
use crate::setup::{self, DataDir};
use crate::store::{Device, User};

const ACTOR: &str = "operator:cli";

async fn user_named(data: &DataDir, name: &str) -> anyhow::Result<User> {
    Ok(data
        .store
        .user_by_name(name)
        .await?
        .with_context(|| format!("no account is named `{name}`"))?
        .0)
}

/// `conclave user add`: prints the generated password when none was given.
pub async fn user_add(
    config: &Config,
    name: &str,
    display_name: &str,
    role: Role,
    password: Option<String>,
) -> anyhow::Result<()> {
    let data = setup::open(config).await?;
    let (user, generated) = accounts::create(
        &data.store,
        &data.audit,
        ACTOR,
        name,
        display_name,
        role,
        password,
    )
    .await?;
    println!("created {name} ({role}), id {}", user.id);
    if let Some(p) = generated {
        println!("password: {p}");
    }
    Ok(())
}

/// `conclave user list`
pub async fn user_list(config: &Config) -> anyhow::Result<()> {
    let data = setup::open(config).await?;
    println!(
        "{:<24} {:<24} {:<10} {:<8} ID",
        "NAME", "DISPLAY NAME", "ROLE", "STATE"
    );
    for u in data.store.list_users().await? {
        println!(
            "{:<24} {:<24} {:<10} {:<8} {}",
            u.name.expose(),
            u.display_name.expose(),
            u.role,
            if u.disabled { "disabled" } else { "active" },
            u.id
        );
    }
    Ok(())
}

/// `conclave user disable|enable`
pub async fn user_set_disabled(config: &Config, name: &str, disabled: bool) -> anyhow::Result<()> {
    let data = setup::open(config).await?;
    let user = user_named(&data, name).await?;
    data.store.set_user_disabled(&user.id, disabled).await?;
    let what = if disabled { "disabled" } else { "enabled" };
    data.audit
        .note(
            now(),
            ACTOR,
            "user.update",
            format!("user:{}", user.id),
            "ok",
            vec![what.to_string()],
        )
        .await?;
    println!("{name} {what}");
    Ok(())
}

/// `conclave user set-role`
pub async fn user_set_role(config: &Config, name: &str, role: Role) -> anyhow::Result<()> {
    let data = setup::open(config).await?;
    let user = user_named(&data, name).await?;
    data.store.set_user_role(&user.id, role).await?;
    data.audit
        .note(
            now(),
            ACTOR,
            "user.update",
            format!("user:{}", user.id),
            "ok",
            vec![format!("role {role}")],
        )
        .await?;
    println!("{name} is now {role}");
    Ok(())
}

/// `conclave user reset-password`: prints the new password; ends the user's sessions.
pub async fn user_reset_password(config: &Config, name: &str) -> anyhow::Result<()> {
    let data = setup::open(config).await?;
    let user = user_named(&data, name).await?;
    let password = crate::password::generate();
    data.store
        .set_password_hash(&user.id, &crate::password::hash_new(&password)?, None)
        .await?;
    data.audit
        .note(
            now(),
            ACTOR,
            "user.reset_password",
            format!("user:{}", user.id),
            "ok",
            vec![],
        )
        .await?;
    println!("new password for {name}: {password}");
    Ok(())
}

/// `conclave device list`
pub async fn device_list(config: &Config, user: Option<&str>) -> anyhow::Result<()> {
    let data = setup::open(config).await?;
    let owner = match user {
        Some(name) => Some(user_named(&data, name).await?.id),
        None => None,
    };
    let users = data.store.list_users().await?;
    println!(
        "{:<24} {:<20} {:<20} {:<9} {:<8}",
        "ID", "OWNER", "NAME", "TRUST", "STATE"
    );
    for d in data.store.list_devices(owner.as_ref()).await? {
        let owner = users
            .iter()
            .find(|u| u.id == d.user_id)
            .map_or_else(|| d.user_id.to_string(), |u| u.name.expose().clone());
        println!(
            "{:<24} {:<20} {:<20} {:<9} {}",
            d.id,
            owner,
            d.name,
            d.trust,
            if d.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            }
        );
    }
    Ok(())
}

async fn device_by_id(data: &DataDir, id: &str) -> anyhow::Result<Device> {
    let id: DeviceId = id.parse().context("malformed device id")?;
    data.store.device(&id).await?.context("no such device")
}

/// `conclave device set-trust`
pub async fn device_set_trust(config: &Config, id: &str, trust: DeviceTrust) -> anyhow::Result<()> {
    let data = setup::open(config).await?;
    let device = device_by_id(&data, id).await?;
    if !data.store.set_device_trust(&device.id, trust).await? {
        bail!("device {id} is revoked");
    }
    data.audit
        .note(
            now(),
            ACTOR,
            "device.set_trust",
            format!("device:{}", device.id),
            "ok",
            vec![format!("trust {} -> {trust}", device.trust)],
        )
        .await?;
    println!("device {id} is now {trust}");
    Ok(())
}

/// `conclave device revoke`
pub async fn device_revoke(config: &Config, id: &str) -> anyhow::Result<()> {
    let data = setup::open(config).await?;
    let device = device_by_id(&data, id).await?;
    if !data.store.revoke_device(&device.id, now()).await? {
        bail!("device {id} is already revoked");
    }
    data.audit
        .note(
            now(),
            ACTOR,
            "device.revoke",
            format!("device:{}", device.id),
            "ok",
            vec![],
        )
        .await?;
    println!("device {id} revoked");
    Ok(())
}

/// `conclave device enrol-token`: a one-time token that registers a managed device.
pub async fn device_enrol_token(config: &Config, user: Option<&str>) -> anyhow::Result<()> {
    let data = setup::open(config).await?;
    let for_user = match user {
        Some(name) => Some(user_named(&data, name).await?.id),
        None => None,
    };
    let admin = data
        .store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.role == Role::Admin && !u.disabled)
        .context("no active admin account to issue the token in the name of")?;
    let lifetime = std::time::Duration::from_secs(
        u64::from(config.devices.enrolment_token_lifetime_hours) * 3600,
    );
    let (token, expires) = accounts::issue_enrolment_token(
        &data.store,
        &data.audit,
        ACTOR,
        &admin.id,
        for_user.as_ref(),
        lifetime,
    )
    .await?;
    println!("enrolment token (valid until {expires}): {token}");
    Ok(())
}

/// `conclave audit verify`: `Ok(false)` when the log was tampered with.
pub async fn audit_verify(config: &Config) -> anyhow::Result<bool> {
    let data = setup::open(config).await?;
    match verify_stored(&data.store, &data.key.public()).await {
        Ok(report) => {
            println!(
                "audit log intact: {} entries, {} signed heads, last signed entry {}",
                report.entries,
                report.signed_heads,
                report
                    .last_signed_seq
                    .map_or("none".into(), |s| s.to_string())
            );
            Ok(true)
        }
        Err(VerifyFailure::Tampered(e)) => {
            eprintln!("audit log verification FAILED: {e}");
            Ok(false)
        }
        Err(VerifyFailure::Store(e)) => {
            eprintln!("audit log verification FAILED: {e}");
            Ok(false)
        }
    }
}

/// `conclave audit export`: JSON lines to `out`.
pub async fn audit_export(config: &Config, out: &mut dyn Write) -> anyhow::Result<u64> {
    let data = setup::open(config).await?;
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = data.store.audit_entries(after, 1000).await?;
        for entry in &page {
            serde_json::to_writer(&mut *out, entry)?;
            out.write_all(b"\n")?;
            n += 1;
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = last.seq,
            _ => break,
        }
    }
    out.flush()?;
    Ok(n)
}
