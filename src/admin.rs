//! The daemon's admin JSON API over the delivery queue: the same operations
//! as the `outbox` and `dead-letters` commands (which use it while a daemon
//! holds the store), through [`crate::operate`].
//!
//! | call | what |
//! |---|---|
//! | `GET /api/outbox?target=` | pending entries |
//! | `GET /api/dead-letters?target=` | dead letters |
//! | `GET /api/dead-letters/{eventId}` | one, with its event (personal data masked) |
//! | `POST /api/dead-letters/{eventId}/replay` | replay one |
//! | `POST /api/dead-letters/replay?target=` | replay all (of a target) |
//! | `POST /api/dead-letters/purge?older_than=30d&target=` | purge |
//! | `POST /api/outbox/retry?target=&seq=` | retry now |
//!
//! When `admin.token` is set, every state-changing call needs
//! `Authorization: Bearer <token>` (compared in constant time); the listener
//! binds to loopback by default.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use crate::operate::{self, OpError};
use crate::poll::App;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/outbox", get(outbox))
        .route("/api/outbox/retry", post(retry))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/dead-letters/replay", post(replay_all))
        .route("/api/dead-letters/purge", post(purge))
        .route("/api/dead-letters/{id}", get(dead_letter))
        .route("/api/dead-letters/{id}/replay", post(replay))
        .with_state(app)
}

#[derive(Deserialize)]
struct Filter {
    target: Option<String>,
    seq: Option<u64>,
    older_than: Option<String>,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn failed(e: OpError) -> Response {
    match e {
        OpError::NoTarget(_) | OpError::NoDeadLetter(_) => {
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        OpError::Store(_) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Whether a state-changing call may go ahead.
pub fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = &app.config.admin.token else {
        return true;
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "this call changes state: send `Authorization: Bearer <admin.token>`".into(),
    )
}

/// A state-changing call: refused without the token; after `op`, the
/// delivery workers are woken when `wake` (a replay or retry moved entries).
fn act<T: serde::Serialize>(
    app: &App,
    headers: &HeaderMap,
    wake: bool,
    op: impl FnOnce(&App) -> Result<T, OpError>,
) -> Response {
    if !authorized(app, headers) {
        return unauthorized();
    }
    match op(app) {
        Ok(done) => {
            if wake {
                app.outbox_changed.send_modify(|n| *n += 1);
            }
            Json(done).into_response()
        }
        Err(e) => failed(e),
    }
}

async fn outbox(State(app): State<Arc<App>>, Query(f): Query<Filter>) -> Response {
    match operate::outbox(&app.store, &app.targets, f.target.as_deref()) {
        Ok(v) => Json(v).into_response(),
        Err(e) => failed(e),
    }
}

async fn dead_letters(State(app): State<Arc<App>>, Query(f): Query<Filter>) -> Response {
    match operate::dead_letters(&app.store, &app.targets, f.target.as_deref()) {
        Ok(v) => Json(v).into_response(),
        Err(e) => failed(e),
    }
}

async fn dead_letter(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match operate::dead_letter(&app.store, &app.targets, &id) {
        Ok(v) => Json(v).into_response(),
        Err(e) => failed(e),
    }
}

async fn replay(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    act(&app, &headers, true, |app| {
        operate::replay(&app.store, &app.targets, &[id])
    })
}

async fn replay_all(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Response {
    act(&app, &headers, true, |app| {
        operate::replay_all(&app.store, &app.targets, f.target.as_deref())
    })
}

async fn purge(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Response {
    if !authorized(&app, &headers) {
        return unauthorized();
    }
    let older_than = match f.older_than.as_deref().map(humantime::parse_duration) {
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`older_than` is not a duration like `30d` ({e})"),
            );
        }
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "`older_than` is required, e.g. `30d`".into(),
            );
        }
    };
    act(&app, &headers, false, |app| {
        operate::purge(&app.store, &app.targets, f.target.as_deref(), older_than)
    })
}

async fn retry(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> Response {
    act(&app, &headers, true, |app| {
        operate::retry_now(&app.store, &app.targets, f.target.as_deref(), f.seq)
            .map(|n| json!({ "retried": n }))
    })
}
