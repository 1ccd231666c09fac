//! The daemon's admin listener: the JSON API and the operator console
//! ([`crate::console`]), behind one set of access rules. `/healthz` and
//! `/metrics` are served beside them by the daemon and stay open for
//! monitors.
//!
//! | call | what |
//! |---|---|
//! | `GET /api/status` | last polls, targets, the upstream's state |
//! | `GET /api/search?q=` | invoices by order code, tracking number, invoice id or event id, with timelines |
//! | `GET /api/invoices/{invoiceId}` | one invoice's timeline |
//! | `GET /api/outbox?target=&limit=` | pending entries, oldest first |
//! | `GET /api/dead-letters?target=&limit=` | dead letters, oldest first |
//! | `GET /api/dead-letters/{eventId}` | one, with its event (personal data masked) |
//! | `POST /api/dead-letters/{eventId}/replay` | replay one |
//! | `POST /api/dead-letters/replay?target=` | replay all (of a target) |
//! | `POST /api/dead-letters/purge?older_than=30d&target=` | purge |
//! | `POST /api/outbox/retry?target=&seq=` | retry now |
//!
//! **Access.** The listener binds to loopback unless configured otherwise,
//! and `admin.listen` off loopback without `admin.token` is refused when
//! the config is read.
//! - With `admin.token` set, every API call needs `Authorization: Bearer
//!   <token>` (compared in constant time) and every page the console's
//!   session cookie (see [`crate::console`]).
//! - Without a token (loopback only), reads and actions are open to this
//!   machine, but only under a loopback `Host` name: a page elsewhere that
//!   points a DNS name at 127.0.0.1 (DNS rebinding) gets 403.
//! - A state-changing call from a browser on another site (`Origin` not
//!   this host, or `Sec-Fetch-Site: cross-site`) is refused with 403, token
//!   or not; the console's forms carry a CSRF token as well.
//! - The token never appears in a page, a log line or an error.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::inspect::{self, Upstream};
use crate::operate::{self, OpError};
use crate::poll::App;

/// What the admin handlers share.
#[derive(Clone)]
pub struct Admin {
    pub app: Arc<App>,
    /// The daemon's view of the upstream (key, last poll, last error).
    pub upstream: Arc<dyn Fn() -> Upstream + Send + Sync>,
    pub access: Arc<Access>,
}

impl Admin {
    pub fn new(app: Arc<App>, upstream: Arc<dyn Fn() -> Upstream + Send + Sync>) -> Admin {
        let access = Arc::new(Access::new(app.config.admin.token.clone()));
        Admin {
            app,
            upstream,
            access,
        }
    }

    pub fn status(&self) -> Result<inspect::Status, OpError> {
        inspect::status(
            &self.app.store,
            &self.app.targets,
            (self.upstream)(),
            self.app.config.store.history_days,
        )
    }
}

/// The token, and what is derived from it for the console.
pub struct Access {
    token: Option<SecretString>,
    /// The console cookie's value: an HMAC of a fixed text under the token,
    /// so the cookie is not the token itself.
    session: String,
    /// The forms' CSRF token: an HMAC under the token, or under a random
    /// key of this process when there is no token.
    csrf: String,
}

type HmacSha256 = Hmac<Sha256>;

fn mac_hex(key: &[u8], text: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Access {
    pub fn new(token: Option<SecretString>) -> Access {
        let key: Vec<u8> = match &token {
            Some(t) => t.expose_secret().as_bytes().to_vec(),
            None => (0..32).map(|_| fastrand::u8(..)).collect(),
        };
        Access {
            session: mac_hex(&key, "poomgo-notifier console session v1"),
            csrf: mac_hex(&key, "poomgo-notifier console csrf v1"),
            token,
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `given` is the token (constant time).
    pub fn is_token(&self, given: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| constant_time_eq(given.as_bytes(), t.expose_secret().as_bytes()))
    }

    /// A request that carries the token as a Bearer header.
    pub fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        if self.token.is_none() {
            return true;
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        self.is_token(given)
    }

    /// A console request: the session cookie, or the Bearer header.
    pub fn session_ok(&self, headers: &HeaderMap) -> bool {
        if self.token.is_none() {
            return true;
        }
        let cookie = cookie(headers, crate::console::COOKIE).unwrap_or_default();
        constant_time_eq(cookie.as_bytes(), self.session.as_bytes()) || self.bearer_ok(headers)
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    pub fn csrf_ok(&self, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.csrf.as_bytes())
    }
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A browser request made by a page of another site. Browsers say so in
/// `Sec-Fetch-Site` (all current ones); otherwise `Origin`, when sent, must
/// be this host. Clients that are not browsers (curl, the CLI) send neither.
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none`: the user typed the address or used a bookmark.
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    origin_host != Some(host)
}

/// Whether the `Host` a request was sent to names this machine.
fn loopback_host(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The rules every API call and page goes through before its handler; see
/// the module docs.
async fn guard(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let api = request.uri().path().starts_with("/api/");
    let writes = request.method() != Method::GET && request.method() != Method::HEAD;
    if !admin.access.has_token() && !loopback_host(headers) {
        return refuse(
            api,
            StatusCode::FORBIDDEN,
            "without `admin.token` the admin listener answers only to a loopback address (localhost, 127.0.0.1); set a token to reach it by another name",
        );
    }
    if writes && cross_site(headers) {
        return refuse(
            api,
            StatusCode::FORBIDDEN,
            "a state-changing request from another site is refused",
        );
    }
    if api {
        if !admin.access.bearer_ok(headers) {
            return refuse(
                true,
                StatusCode::UNAUTHORIZED,
                "send `Authorization: Bearer <admin.token>`",
            );
        }
    } else if !crate::console::public(request.uri().path()) && !admin.access.session_ok(headers) {
        return crate::console::to_login(request.uri());
    }
    next.run(request).await
}

fn refuse(api: bool, status: StatusCode, message: &str) -> Response {
    if api {
        error(status, message.to_owned())
    } else {
        crate::console::message_page(status, message)
    }
}

/// The API and the console, with their access rules.
pub fn router(admin: Admin) -> Router {
    let api = Router::new()
        .route("/api/status", get(status))
        .route("/api/search", get(search))
        .route("/api/invoices/{id}", get(invoice))
        .route("/api/outbox", get(outbox))
        .route("/api/outbox/retry", post(retry))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/dead-letters/replay", post(replay_all))
        .route("/api/dead-letters/purge", post(purge))
        .route("/api/dead-letters/{id}", get(dead_letter))
        .route("/api/dead-letters/{id}/replay", post(replay));
    api.merge(crate::console::routes())
        .layer(middleware::from_fn_with_state(admin.clone(), guard))
        .with_state(admin)
}

#[derive(Deserialize)]
struct Filter {
    target: Option<String>,
    seq: Option<u64>,
    older_than: Option<String>,
    q: Option<String>,
    /// At most this many entries (oldest first); all when absent.
    limit: Option<usize>,
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

fn answer<T: serde::Serialize>(result: Result<T, OpError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => failed(e),
    }
}

/// Wakes the delivery workers after a replay or retry moved entries.
pub fn wake(app: &App) {
    app.outbox_changed.send_modify(|n| *n += 1);
}

async fn status(State(admin): State<Admin>) -> Response {
    answer(admin.status())
}

/// At most this many invoices' timelines in one search answer.
const SEARCH_TIMELINES: usize = 20;

async fn search(State(admin): State<Admin>, Query(f): Query<Filter>) -> Response {
    let q = f.q.unwrap_or_default();
    let app = &admin.app;
    let found = inspect::search(&app.store, app.sender.renderer(), &q, SEARCH_TIMELINES);
    answer(found.map(|results| json!({ "query": q.trim(), "results": results })))
}

async fn invoice(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let app = &admin.app;
    match inspect::invoice(&app.store, app.sender.renderer(), &id) {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no invoice {id} is tracked or in the history"),
        ),
        Err(e) => failed(e),
    }
}

fn limited<T>(list: Result<Vec<T>, OpError>, limit: Option<usize>) -> Result<Vec<T>, OpError> {
    list.map(|mut l| {
        l.truncate(limit.unwrap_or(usize::MAX));
        l
    })
}

async fn outbox(State(admin): State<Admin>, Query(f): Query<Filter>) -> Response {
    let list = operate::outbox(&admin.app.store, &admin.app.targets, f.target.as_deref());
    answer(limited(list, f.limit))
}

async fn dead_letters(State(admin): State<Admin>, Query(f): Query<Filter>) -> Response {
    let list = operate::dead_letters(&admin.app.store, &admin.app.targets, f.target.as_deref());
    answer(limited(list, f.limit))
}

async fn dead_letter(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    answer(operate::dead_letter(
        &admin.app.store,
        &admin.app.targets,
        &id,
    ))
}

/// A state-changing call (the guard has checked access); wakes the workers
/// when `wake`.
fn act<T: serde::Serialize>(
    app: &App,
    wake: bool,
    op: impl FnOnce(&App) -> Result<T, OpError>,
) -> Response {
    let result = op(app);
    if wake && result.is_ok() {
        self::wake(app);
    }
    answer(result)
}

async fn replay(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    act(&admin.app, true, |app| {
        operate::replay(&app.store, &app.targets, &[id])
    })
}

async fn replay_all(State(admin): State<Admin>, Query(f): Query<Filter>) -> Response {
    act(&admin.app, true, |app| {
        operate::replay_all(&app.store, &app.targets, f.target.as_deref())
    })
}

async fn purge(State(admin): State<Admin>, Query(f): Query<Filter>) -> Response {
    let older_than = match parse_older_than(f.older_than.as_deref()) {
        Ok(d) => d,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    act(&admin.app, false, |app| {
        operate::purge(&app.store, &app.targets, f.target.as_deref(), older_than)
    })
}

/// `older_than` of a purge, e.g. `30d`.
pub fn parse_older_than(given: Option<&str>) -> Result<std::time::Duration, String> {
    match given.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => humantime::parse_duration(s)
            .map_err(|e| format!("`older_than` is not a duration like `30d` ({e})")),
        None => Err("`older_than` is required, e.g. `30d`".into()),
    }
}

async fn retry(State(admin): State<Admin>, Query(f): Query<Filter>) -> Response {
    act(&admin.app, true, |app| {
        operate::retry_now(&app.store, &app.targets, f.target.as_deref(), f.seq)
            .map(|n| json!({ "retried": n }))
    })
}
