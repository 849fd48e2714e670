//! `/healthz` and `/metrics`: what an operator's probes read.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use serde_json::json;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::error::ApiError;
use super::filters::get_or_head;
use super::views::json;
use super::State;
use crate::auth::AuthError;

/// The OpenAPI 3.1 description of every route (`src/http/openapi.json`),
/// with the configured cookie name; tests keep it and the route table equal.
const OPENAPI: &str = include_str!("openapi.json");

/// The document as served: the cookie's configured name filled in.
fn openapi_document(cookie_name: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(OPENAPI) {
        Ok(mut doc) => {
            doc["components"]["securitySchemes"]["sessionCookie"]["name"] = json!(cookie_name);
            doc.to_string()
        }
        Err(_) => OPENAPI.to_owned(),
    }
}

/// Health, metrics and the API description.
pub fn routes(state: State) -> warp::filters::BoxedFilter<(Response,)> {
    let document = openapi_document(&state.config.session.cookie_name);
    let openapi = warp::path!("api" / "openapi.json")
        .and(get_or_head())
        .map(move || {
            let mut res = Response::new(document.clone().into());
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            res
        });
    let store = state.auth.store().clone();
    let health = warp::path!("healthz").and(get_or_head()).then(move || {
        let store = store.clone();
        async move {
            match store.ping().await {
                Ok(()) => json(StatusCode::OK, &json!({ "status": "ok" })),
                Err(e) => {
                    tracing::warn!(error = %e, "health check: storage unavailable");
                    json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({ "status": "storage_unavailable" }),
                    )
                }
            }
        }
    });
    let metrics = warp::path!("metrics").and(get_or_head()).and_then(move || {
        let state = state.clone();
        async move {
            let sessions = state
                .auth
                .store()
                .session_count()
                .await
                .map_err(|e| warp::reject::custom(ApiError::from(AuthError::from(e))))?;
            Ok::<_, warp::Rejection>(metrics(&state, sessions))
        }
    });
    health.or(metrics).unify().or(openapi).unify().boxed()
}

fn metrics(state: &State, sessions: u64) -> Response {
    let store = state.auth.store();
    let logins = state.auth.login_counts();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "sessiond_sessions_active",
        "gauge",
        "Sessions stored and not yet pruned.",
        &[("", sessions)],
    );
    metric(
        "sessiond_logins_total",
        "counter",
        "Login attempts by outcome.",
        &[
            (
                "{result=\"success\"}",
                logins.success.load(Ordering::Relaxed),
            ),
            (
                "{result=\"failure\"}",
                logins.failure.load(Ordering::Relaxed),
            ),
            (
                "{result=\"throttled\"}",
                logins.throttled.load(Ordering::Relaxed),
            ),
        ],
    );
    let mfa = state.auth.mfa_counts();
    metric(
        "sessiond_mfa_total",
        "counter",
        "Second steps of sign-ins by outcome.",
        &[
            ("{result=\"success\"}", mfa.success.load(Ordering::Relaxed)),
            ("{result=\"failure\"}", mfa.failure.load(Ordering::Relaxed)),
            (
                "{result=\"throttled\"}",
                mfa.throttled.load(Ordering::Relaxed),
            ),
        ],
    );
    let mail = state.auth.outbox().counts();
    metric(
        "sessiond_mail_total",
        "counter",
        "Mails by outcome: queued by this instance, sent, given up on.",
        &[
            ("{result=\"queued\"}", mail.queued.load(Ordering::Relaxed)),
            ("{result=\"sent\"}", mail.sent.load(Ordering::Relaxed)),
            ("{result=\"failed\"}", mail.failed.load(Ordering::Relaxed)),
        ],
    );
    let recovery = state.auth.recovery_counts();
    metric(
        "sessiond_recovery_total",
        "counter",
        "Password recoveries: codes asked for, passwords set, codes refused, requests throttled.",
        &[
            (
                "{result=\"requested\"}",
                recovery.requested.load(Ordering::Relaxed),
            ),
            ("{result=\"used\"}", recovery.used.load(Ordering::Relaxed)),
            (
                "{result=\"failed\"}",
                recovery.failed.load(Ordering::Relaxed),
            ),
            (
                "{result=\"throttled\"}",
                recovery.throttled.load(Ordering::Relaxed),
            ),
        ],
    );
    let backups = &state.backups;
    metric(
        "sessiond_backups_total",
        "counter",
        "Backups taken by this instance (on request and on schedule), and scheduled ones that failed.",
        &[
            ("{result=\"taken\"}", backups.taken.load(Ordering::Relaxed)),
            ("{result=\"failed\"}", backups.failed.load(Ordering::Relaxed)),
        ],
    );
    metric(
        "sessiond_backup_last_timestamp_seconds",
        "gauge",
        "When this instance last took a backup (Unix seconds; 0: none yet).",
        &[("", backups.last_at.load(Ordering::Relaxed))],
    );
    metric(
        "sessiond_backup_last_bytes",
        "gauge",
        "The size of the last backup this instance took.",
        &[("", backups.last_bytes.load(Ordering::Relaxed))],
    );
    metric(
        "sessiond_session_touches_total",
        "counter",
        "Activity writes (at most one per session per touch_interval).",
        &[("", store.touches_total())],
    );
    metric(
        "sessiond_sessions_pruned_total",
        "counter",
        "Ended sessions removed by the pruner.",
        &[("", store.pruned_total())],
    );
    metric(
        "sessiond_ws_connections",
        "gauge",
        "Open WebSocket connections.",
        &[("", state.ws_connections.load(Ordering::Relaxed))],
    );
    let mut res = out.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
