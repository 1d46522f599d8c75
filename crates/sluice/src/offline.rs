//! Commands that work on a data directory without a server: tenants, keys, check,
//! inspect. Catalog edits take the data directory's lock, so they refuse to run under a
//! live server (use the admin API there); check and inspect only read.

use std::process::ExitCode;

use anyhow::{bail, Context};
use sluice_server::auth::generate_key;
use sluice_server::json::rfc3339_ms;
use sluice_server::validate;
use sluice_store::embedded::catalog_file::CatalogFile;
use sluice_store::embedded::fsutil::lock_dir;
use sluice_store::embedded::verify::verify_dir;
use sluice_store::embedded::Clock;
use sluice_store::TenantLimits;

use crate::cli::{DataDir, KeysCommand, LimitFlags, TenantsCommand};

fn limits(l: &LimitFlags) -> TenantLimits {
    TenantLimits {
        max_payload_bytes: l.max_payload_bytes,
        rate_per_second: l.rate_per_second,
        rate_burst: l.rate_burst,
    }
}

fn show(v: Option<u32>) -> String {
    v.map_or_else(|| "default".to_owned(), |v| v.to_string())
}

pub fn tenants(cmd: TenantsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TenantsCommand::Create {
            name,
            limits: l,
            dir,
        } => {
            if !validate::tenant_name(&name) {
                bail!("tenant names are 1 to 64 characters of a-z, 0-9, '_' or '-'");
            }
            let _lock = lock_dir(&dir.data_dir)?;
            let file = CatalogFile::new(&dir.data_dir);
            let (next, tenant) =
                file.load()?
                    .with_tenant(&name, limits(&l), Clock::System.now_ms())?;
            file.save(&next)?;
            println!("created tenant {:?}", tenant.name);
        }
        TenantsCommand::List { dir } => {
            let catalog = CatalogFile::new(&dir.data_dir).load()?;
            println!(
                "{:<24} {:<26} {:>14} {:>10} {:>10}",
                "NAME", "CREATED", "PAYLOAD_BYTES", "RATE/S", "BURST"
            );
            for t in &catalog.tenants {
                println!(
                    "{:<24} {:<26} {:>14} {:>10} {:>10}",
                    t.name,
                    rfc3339_ms(t.created_at),
                    show(t.limits.max_payload_bytes),
                    show(t.limits.rate_per_second),
                    show(t.limits.rate_burst)
                );
            }
        }
        TenantsCommand::SetLimits {
            name,
            limits: l,
            dir,
        } => {
            let _lock = lock_dir(&dir.data_dir)?;
            let file = CatalogFile::new(&dir.data_dir);
            let (next, _) = file.load()?.with_limits(&name, limits(&l))?;
            file.save(&next)?;
            println!("updated limits of tenant {name:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn keys(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Create {
            tenant,
            scopes,
            dir,
        } => {
            let scopes = validate::scopes(&scopes).map_err(|p| anyhow::anyhow!(p.detail))?;
            let _lock = lock_dir(&dir.data_dir)?;
            let file = CatalogFile::new(&dir.data_dir);
            let catalog = file.load()?;
            let t = catalog
                .tenant_by_name(&tenant)
                .with_context(|| format!("no tenant {tenant:?} in {}", dir.data_dir.display()))?;
            let key = generate_key(t.id, scopes, Clock::System.now_ms());
            file.save(&catalog.with_key(key.record.clone())?)?;
            eprintln!(
                "created {} for tenant {tenant:?}; the key is shown only once:",
                key.record.id
            );
            println!("{}", key.secret);
        }
        KeysCommand::List { tenant, dir } => {
            let catalog = CatalogFile::new(&dir.data_dir).load()?;
            println!(
                "{:<22} {:<16} {:<12} {:<24} {:<26} REVOKED",
                "KEY_ID", "TENANT", "PREFIX", "SCOPES", "CREATED"
            );
            for k in &catalog.keys {
                let name = catalog.tenant(k.tenant).map_or("?", |t| t.name.as_str());
                if tenant.as_deref().is_some_and(|t| t != name) {
                    continue;
                }
                let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                println!(
                    "{:<22} {:<16} {:<12} {:<24} {:<26} {}",
                    k.id,
                    name,
                    k.prefix,
                    scopes.join(","),
                    rfc3339_ms(k.created_at),
                    k.revoked_at.map_or_else(|| "-".to_owned(), rfc3339_ms)
                );
            }
        }
        KeysCommand::Revoke { key_id, dir } => {
            let _lock = lock_dir(&dir.data_dir)?;
            let file = CatalogFile::new(&dir.data_dir);
            file.save(&file.load()?.with_revoked(&key_id, Clock::System.now_ms())?)?;
            println!("revoked {key_id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check(dir: DataDir) -> anyhow::Result<ExitCode> {
    let report = verify_dir(&dir.data_dir)?;
    let mut corrupt = false;
    for s in &report.segments {
        match &s.damage {
            None => println!("ok       {}  {} events, {} batches, {} bytes", s.path.display(), s.events, s.batches, s.data_bytes),
            Some(d) if !s.is_corrupt() => println!(
                "torn     {}  {} at byte {} (an interrupted final write; the next start cuts it off)",
                s.path.display(),
                d.reason,
                d.offset
            ),
            Some(d) => {
                corrupt = true;
                println!("CORRUPT  {}  {} at byte {}", s.path.display(), d.reason, d.offset);
            }
        }
    }
    println!(
        "{} segments, {} events checked",
        report.segments.len(),
        report.events()
    );
    if corrupt {
        println!("the data directory is corrupt: `sluice serve --repair` truncates each damaged segment at the damage (events after it in that segment are lost)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(dir: DataDir) -> anyhow::Result<ExitCode> {
    let report = verify_dir(&dir.data_dir)?;
    println!(
        "{:<26} {:>10} {:>8} {:>8} {:>8} {:>12} {:>12}  RECEIVED",
        "SEGMENT", "EVENTS", "ACKS", "DELETES", "BATCHES", "DATA_BYTES", "FILE_BYTES"
    );
    let (mut events, mut data, mut file) = (0, 0, 0);
    for s in &report.segments {
        let name = s
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let range = s.received_range.map_or_else(
            || "-".to_owned(),
            |(lo, hi)| format!("{} .. {}", rfc3339_ms(lo), rfc3339_ms(hi)),
        );
        println!(
            "{name:<26} {:>10} {:>8} {:>8} {:>8} {:>12} {:>12}  {range}",
            s.events, s.acks, s.deletes, s.batches, s.data_bytes, s.file_bytes
        );
        events += s.events;
        data += s.data_bytes;
        file += s.file_bytes;
    }
    let catalog = CatalogFile::new(&dir.data_dir).load()?;
    println!(
        "{} segments, {events} events, {data} bytes of data in {file} bytes of files; {} tenants, {} keys ({} revoked)",
        report.segments.len(),
        catalog.tenants.len(),
        catalog.keys.len(),
        catalog.keys.iter().filter(|k| k.revoked_at.is_some()).count()
    );
    if report.is_corrupt() {
        println!("damage found: run `sluice check` for details");
    }
    Ok(ExitCode::SUCCESS)
}
