//! The admin API (`/v1/admin/...`): tenants, keys and limits. Control plane: rare,
//! small, and free to allocate.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use serde::Deserialize;
use sluice_store::{Catalog, Scope, Store, StoreError, Tenant, TenantLimits};

use crate::app::{json_reply, Reply};
use crate::auth::generate_key;
use crate::json::{rfc3339_ms, JsonWriter};
use crate::problem::{Code, FieldError, Problem};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchTenant {
    limits: LimitsBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    scopes: Option<Vec<String>>,
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            Problem::validation(vec![FieldError::new("", e.to_string())])
        } else {
            Problem::new(Code::MalformedJson, format!("body is not valid JSON: {e}"))
        }
    })
}

/// Tenant names: 1–64 characters of `[a-z0-9_-]`, so they are safe in URLs and labels.
pub fn valid_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Parses scope names as the API and CLI accept them.
pub fn parse_scopes(names: &[String]) -> Result<Vec<Scope>, Problem> {
    let mut scopes = Vec::new();
    for name in names {
        match Scope::parse(name) {
            Some(s) if !scopes.contains(&s) => scopes.push(s),
            Some(_) => {}
            None => {
                return Err(Problem::validation(vec![FieldError::new(
                    "scopes",
                    format!("unknown scope {name:?}; use ingest, consume or manage"),
                )]))
            }
        }
    }
    if scopes.is_empty() {
        return Err(Problem::validation(vec![FieldError::new(
            "scopes",
            "must name at least one scope",
        )]));
    }
    Ok(scopes)
}

fn catalog_problem(e: StoreError) -> Problem {
    match e {
        StoreError::Conflict(m) => Problem::new(Code::Conflict, m),
        StoreError::NotFound(m) => Problem::new(Code::NotFound, format!("{m} not found")),
        other => {
            tracing::error!(error = %other, "catalog update failed");
            Problem::new(
                Code::StorageUnavailable,
                "could not save the catalog; see the server log",
            )
        }
    }
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
    json_reply(status, w.finish())
}

/// `GET /v1/admin/tenants`
pub fn list_tenants(catalog: &Catalog) -> Reply {
    let mut w = JsonWriter::with_capacity(256 * catalog.tenants.len() + 32);
    w.begin_object();
    w.key("tenants");
    w.begin_array();
    for t in &catalog.tenants {
        write_tenant(&mut w, t);
    }
    w.end_array();
    w.end_object();
    json_reply(StatusCode::OK, w.finish())
}

/// `POST /v1/admin/tenants {"name", "limits"?}`
pub async fn create_tenant<S: Store>(store: &S, body: &[u8]) -> Result<Reply, Problem> {
    let req: CreateTenant = parse(body)?;
    if !valid_tenant_name(&req.name) {
        return Err(Problem::validation(vec![FieldError::new(
            "name",
            "must be 1 to 64 characters of a-z, 0-9, '_' or '-'",
        )]));
    }
    let limits = req.limits.map(TenantLimits::from).unwrap_or_default();
    let tenant = store
        .create_tenant(&req.name, limits)
        .await
        .map_err(catalog_problem)?;
    Ok(tenant_reply(StatusCode::CREATED, &tenant))
}

/// `PATCH /v1/admin/tenants/{name} {"limits"}`
pub async fn set_limits<S: Store>(store: &S, name: &str, body: &[u8]) -> Result<Reply, Problem> {
    let req: PatchTenant = parse(body)?;
    let tenant = store
        .set_tenant_limits(name, req.limits.into())
        .await
        .map_err(catalog_problem)?;
    Ok(tenant_reply(StatusCode::OK, &tenant))
}

/// `GET /v1/admin/tenants/{name}/keys`
pub fn list_keys(catalog: &Catalog, name: &str) -> Result<Reply, Problem> {
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
    Ok(json_reply(StatusCode::OK, w.finish()))
}

/// `POST /v1/admin/tenants/{name}/keys {"scopes"}` → the key, shown once.
pub async fn create_key<S: Store>(store: &S, name: &str, body: &[u8]) -> Result<Reply, Problem> {
    let req: CreateKey = if body.is_empty() {
        CreateKey { scopes: None }
    } else {
        parse(body)?
    };
    let scopes = match req.scopes {
        Some(names) => parse_scopes(&names)?,
        None => Scope::ALL.to_vec(),
    };
    let catalog = store.catalog();
    let tenant = catalog
        .tenant_by_name(name)
        .ok_or_else(|| Problem::new(Code::NotFound, format!("no tenant {name:?}")))?;
    let now = sluice_store::embedded::Clock::System.now_ms();
    let key = generate_key(tenant.id, scopes, now);
    store
        .add_key(key.record.clone())
        .await
        .map_err(catalog_problem)?;
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
    Ok(json_reply(StatusCode::CREATED, w.finish()))
}

/// `DELETE /v1/admin/keys/{key_id}`
pub async fn revoke_key<S: Store>(store: &S, key_id: &str) -> Result<Reply, Problem> {
    store.revoke_key(key_id).await.map_err(catalog_problem)?;
    let mut r = http::Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}
