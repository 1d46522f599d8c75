//! The admin API (`/v1/admin/...`): tenants, keys and limits, behind the admin token.
//! Control plane: rare, small, and free to allocate.

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use sluice_store::{CatalogOps, Scope, Store, Tenant, TenantLimits};

use super::{parse_json as parse, store_problem};
use crate::app::{App, Cx};
use crate::auth::generate_key;
use crate::json::{rfc3339_ms, JsonWriter};
use crate::problem::{Code, FieldError, Problem};
use crate::reply::{self, Reply};
use crate::validate;

/// The largest admin request body.
const ADMIN_BODY_BYTES_MAX: usize = 64 << 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsBody {
    max_payload_bytes: Option<u32>,
    rate_per_second: Option<u32>,
    rate_burst: Option<u32>,
}

impl From<LimitsBody> for TenantLimits {
    fn from(b: LimitsBody) -> Self {
        TenantLimits {
            max_payload_bytes: b.max_payload_bytes,
            rate_per_second: b.rate_per_second,
            rate_burst: b.rate_burst,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: String,
    limits: Option<LimitsBody>,
}

/// A JSON merge patch (RFC 7396) of a tenant's limits: a field left out stays as it
/// is, `null` returns it to the server's default, a number sets it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchTenant {
    limits: LimitsPatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsPatch {
    #[serde(default, deserialize_with = "super::present")]
    max_payload_bytes: Option<Option<u32>>,
    #[serde(default, deserialize_with = "super::present")]
    rate_per_second: Option<Option<u32>>,
    #[serde(default, deserialize_with = "super::present")]
    rate_burst: Option<Option<u32>>,
}

/// Limits of 0 would refuse every request (a rate of 0 is not "unlimited"): refused,
/// so that what is stored always means what it says.
fn check_limits(l: &TenantLimits) -> Result<(), Problem> {
    let mut errors = Vec::new();
    for (field, v) in [
        ("limits.max_payload_bytes", l.max_payload_bytes),
        ("limits.rate_per_second", l.rate_per_second),
        ("limits.rate_burst", l.rate_burst),
    ] {
        if v == Some(0) {
            errors.push(FieldError::new(
                field,
                "must be at least 1 (null returns it to the server's default)",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::validation(errors))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    scopes: Option<Vec<String>>,
}

async fn read_body<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Bytes, Problem> {
    super::read_json_body(app, cx, ADMIN_BODY_BYTES_MAX).await
}

fn write_tenant(w: &mut JsonWriter, t: &Tenant) {
    w.begin_object();
    w.field_str("name", &t.name);
    w.field_str("created_at", &rfc3339_ms(t.created_at));
    w.key("limits");
    w.begin_object();
    let opt = |w: &mut JsonWriter, k: &'static str, v: Option<u32>| match v {
        Some(v) => w.field_u64(k, v as u64),
        None => w.field_null(k),
    };
    opt(w, "max_payload_bytes", t.limits.max_payload_bytes);
    opt(w, "rate_per_second", t.limits.rate_per_second);
    opt(w, "rate_burst", t.limits.rate_burst);
    w.end_object();
    w.end_object();
}

fn tenant_reply(status: StatusCode, t: &Tenant) -> Reply {
    let mut w = JsonWriter::with_capacity(256);
    write_tenant(&mut w, t);
    reply::json(status, w.finish())
}

/// `GET /v1/admin/tenants`
pub(crate) async fn list_tenants<S: Store>(app: &App<S>, _: &mut Cx<'_>) -> Result<Reply, Problem> {
    let catalog = app.catalog_synced().await?;
    let mut w = JsonWriter::with_capacity(256 * catalog.tenants.len() + 32);
    w.begin_object();
    w.key("tenants");
    w.begin_array();
    for t in &catalog.tenants {
        write_tenant(&mut w, t);
    }
    w.end_array();
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `POST /v1/admin/tenants {"name", "limits"?}`
pub(crate) async fn create_tenant<S: Store>(
    app: &App<S>,
    cx: &mut Cx<'_>,
) -> Result<Reply, Problem> {
    let body = read_body(app, cx).await?;
    let req: CreateTenant = parse(&body)?;
    if !validate::tenant_name(&req.name) {
        return Err(Problem::validation(vec![FieldError::new(
            "name",
            "must be 1 to 64 characters of a-z, 0-9, '_' or '-'",
        )]));
    }
    let limits = req.limits.map(TenantLimits::from).unwrap_or_default();
    check_limits(&limits)?;
    let tenant = app
        .store
        .create_tenant(&req.name, limits)
        .await
        .map_err(store_problem)?;
    app.refresh_catalog();
    Ok(tenant_reply(StatusCode::CREATED, &tenant))
}

/// `PATCH /v1/admin/tenants/{name} {"limits"}`
pub(crate) async fn patch_tenant<S: Store>(
    app: &App<S>,
    cx: &mut Cx<'_>,
) -> Result<Reply, Problem> {
    let body = read_body(app, cx).await?;
    let req: PatchTenant = parse(&body)?;
    let name = cx.param("name");
    let mut limits = app
        .find_in_catalog(|catalog| catalog.tenant_by_name(name).map(|t| t.limits))
        .await?
        .ok_or_else(|| Problem::new(Code::NotFound, format!("no tenant {name:?}")))?;
    let p = req.limits;
    for (slot, patch) in [
        (&mut limits.max_payload_bytes, p.max_payload_bytes),
        (&mut limits.rate_per_second, p.rate_per_second),
        (&mut limits.rate_burst, p.rate_burst),
    ] {
        if let Some(v) = patch {
            *slot = v;
        }
    }
    check_limits(&limits)?;
    let tenant = app
        .store
        .set_tenant_limits(name, limits)
        .await
        .map_err(store_problem)?;
    app.refresh_catalog();
    Ok(tenant_reply(StatusCode::OK, &tenant))
}

/// `GET /v1/admin/tenants/{name}/keys`
pub(crate) async fn list_keys<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let name = cx.param("name");
    let catalog = app.catalog_synced().await?;
    let tenant = catalog
        .tenant_by_name(name)
        .ok_or_else(|| Problem::new(Code::NotFound, format!("no tenant {name:?}")))?;
    let mut w = JsonWriter::with_capacity(512);
    w.begin_object();
    w.key("keys");
    w.begin_array();
    for k in catalog.keys.iter().filter(|k| k.tenant == tenant.id) {
        w.begin_object();
        w.field_str("key_id", &k.id);
        w.field_str("prefix", &k.prefix);
        w.key("scopes");
        w.begin_array();
        for s in &k.scopes {
            w.str(s.as_str());
        }
        w.end_array();
        w.field_str("created_at", &rfc3339_ms(k.created_at));
        w.field_opt_str("revoked_at", k.revoked_at.map(rfc3339_ms).as_deref());
        w.end_object();
    }
    w.end_array();
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `POST /v1/admin/tenants/{name}/keys {"scopes"}` → the key, shown once.
pub(crate) async fn create_key<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let body = read_body(app, cx).await?;
    let req: CreateKey = if body.is_empty() {
        CreateKey { scopes: None }
    } else {
        parse(&body)?
    };
    let scopes = match req.scopes {
        Some(names) => validate::scopes(&names)?,
        None => Scope::ALL.to_vec(),
    };
    let name = cx.param("name");
    let tenant = app
        .find_in_catalog(|catalog| catalog.tenant_by_name(name).cloned())
        .await?
        .ok_or_else(|| Problem::new(Code::NotFound, format!("no tenant {name:?}")))?;
    let now = sluice_store::now_ms();
    let key = generate_key(tenant.id, scopes, now);
    app.store
        .add_key(key.record.clone())
        .await
        .map_err(store_problem)?;
    app.refresh_catalog();
    let mut w = JsonWriter::with_capacity(256);
    w.begin_object();
    w.field_str("key", &key.secret);
    w.field_str("key_id", &key.record.id);
    w.field_str("tenant", &tenant.name);
    w.key("scopes");
    w.begin_array();
    for s in &key.record.scopes {
        w.str(s.as_str());
    }
    w.end_array();
    w.field_str("created_at", &rfc3339_ms(now));
    w.end_object();
    Ok(reply::json(StatusCode::CREATED, w.finish()))
}

/// `DELETE /v1/admin/keys/{key_id}`
pub(crate) async fn revoke_key<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    app.store
        .revoke_key(cx.param("key_id"))
        .await
        .map_err(store_problem)?;
    app.refresh_catalog();
    Ok(reply::empty(StatusCode::NO_CONTENT))
}
