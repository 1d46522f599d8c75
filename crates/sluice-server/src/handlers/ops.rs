//! Operations: liveness, readiness, `/metrics` and the OpenAPI document.

use bytes::Bytes;
use http::StatusCode;
use sluice_store::exposition::Exposition;
use sluice_store::{ConsumerId, Store};

use crate::app::{App, Cx};
use crate::metrics::TenantInbox;
use crate::problem::{Code, Problem};
use crate::reply::{self, Reply};

/// `GET /v1/health`: the process is up.
pub(crate) async fn health<S: Store>(_: &App<S>, _: &mut Cx<'_>) -> Result<Reply, Problem> {
    Ok(reply::json(
        StatusCode::OK,
        Bytes::from_static(b"{\"status\":\"ok\"}"),
    ))
}

/// `GET /v1/ready`: the store can serve.
pub(crate) async fn ready<S: Store>(app: &App<S>, _: &mut Cx<'_>) -> Result<Reply, Problem> {
    let health = app.store.health().await;
    if health.ready {
        return Ok(reply::json(
            StatusCode::OK,
            Bytes::from_static(b"{\"status\":\"ready\"}"),
        ));
    }
    let detail = health
        .detail
        .unwrap_or_else(|| "storage is not ready; see the server log".into());
    Err(Problem::new(Code::StorageUnavailable, detail).retry_after(5))
}

/// `GET /metrics`: the request path's metrics, the store's neutral counters, then the
/// backend's own series.
pub(crate) async fn metrics<S: Store>(app: &App<S>, _: &mut Cx<'_>) -> Result<Reply, Problem> {
    let catalog = app.store.catalog().borrow().clone();
    let stats = app.store.stats().await;
    let now = sluice_store::now_ms();
    let pending: Vec<TenantInbox> = match app.store.inbox_summaries().await {
        Ok(summaries) => {
            let row = |tenant: &sluice_store::Tenant, id: ConsumerId, consumer: &str| {
                let s = summaries
                    .iter()
                    .find(|s| s.tenant == tenant.id && s.consumer == id);
                TenantInbox {
                    name: tenant.name.clone(),
                    consumer: consumer.to_owned(),
                    pending: s.map_or(0, |s| s.pending),
                    oldest_age_seconds: s
                        .and_then(|s| s.oldest_pending_ms)
                        .map_or(0.0, |ms| now.saturating_sub(ms).max(0) as f64 / 1000.0),
                }
            };
            let mut rows: Vec<TenantInbox> = catalog
                .tenants
                .iter()
                .map(|t| row(t, ConsumerId::DEFAULT, "default"))
                .collect();
            for c in &catalog.consumers {
                if let Some(t) = catalog.tenant(c.tenant) {
                    rows.push(row(t, c.id, &c.name));
                }
            }
            rows
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: pending counts unavailable");
            Vec::new()
        }
    };
    let mut out = Exposition::with_capacity(16 << 10);
    app.metrics.write(&stats, &pending, &mut out);
    crate::process::write(&mut out);
    app.push.write_metrics(&mut out).await;
    app.store.write_metrics(&mut out).await;
    Ok(reply::with_type(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        Bytes::from(out.finish()),
    ))
}

/// `GET /openapi.json`
pub(crate) async fn openapi<S: Store>(app: &App<S>, _: &mut Cx<'_>) -> Result<Reply, Problem> {
    Ok(reply::json(StatusCode::OK, app.openapi.clone()))
}
