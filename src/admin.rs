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
//! the config is read; a token shorter than 32 characters is refused too.
//! - **`Host`.** Every request, `/healthz` and `/metrics` included, must
//!   name this machine (`localhost`, a loopback address) or, with a token,
//!   an IP address or `admin.public_host` (the name behind a proxy). A page
//!   elsewhere that points a DNS name at 127.0.0.1 (DNS rebinding) gets 403:
//!   rebinding always goes through a name.
//! - **With `admin.token`**, every API call needs `Authorization: Bearer
//!   <token>` and every page a console session ([`Sessions`]). A missing or
//!   malformed header never matches. Tokens are compared as HMAC digests
//!   under a key of this process, in constant time, so neither their length
//!   nor their content leaks through timing.
//! - **Guessing.** Wrong tokens (sign-in or Bearer) are limited per client
//!   address ([`Limiter`]): 10 a minute, then 429 for a minute, doubling up
//!   to 15 minutes. The log says so once a minute at most, not per try.
//! - **Without a token** (loopback only), reads and actions are open to this
//!   machine under a loopback `Host`.
//! - A state-changing call from a browser on another site (`Origin` not
//!   this host, or `Sec-Fetch-Site: cross-site`) is refused with 403, token
//!   or not; the console's forms carry a CSRF token bound to the session.
//! - Every answer carries a strict `Content-Security-Policy`,
//!   `X-Frame-Options: DENY`, `nosniff`, `Referrer-Policy: same-origin` and
//!   (but the stylesheet) `Cache-Control: no-store`: pages carry masked
//!   personal data and must not be framed (clickjacking a Replay button).
//! - [`serve`] bounds connections: a request's headers must arrive within
//!   `admin.header_timeout`, and at most `admin.max_connections` are open,
//!   so idle sockets cannot take the poller's file descriptors.
//! - The token never appears in a page, a log line or an error.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::{
    Json, Router,
    extract::{ConnectInfo, Path, Query, Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::inspect::{self, Upstream};
use crate::operate::{self, OpError};
use crate::poll::App;

/// What the admin handlers share.
#[derive(Clone)]
pub struct Admin {
    /// One app per merchant, in config order.
    pub apps: Arc<Vec<Arc<App>>>,
    /// The daemon's view of a merchant's upstream (key, last poll, last error).
    pub upstream: Arc<dyn Fn(&str) -> Upstream + Send + Sync>,
    pub access: Arc<Access>,
}

tokio::task_local! {
    /// The merchant a request is about (its `merchant` query parameter),
    /// set by [`select_merchant`] around the handler.
    static SELECTED: Arc<App>;
}

impl Admin {
    pub fn new(
        apps: Vec<Arc<App>>,
        upstream: Arc<dyn Fn(&str) -> Upstream + Send + Sync>,
    ) -> Admin {
        let access = Arc::new(Access::new(&apps[0].config.admin));
        Admin {
            apps: Arc::new(apps),
            upstream,
            access,
        }
    }

    /// The merchant this request is about: the one its `merchant` query
    /// parameter names, or the first of the config.
    pub fn app(&self) -> Arc<App> {
        SELECTED
            .try_with(Arc::clone)
            .unwrap_or_else(|_| self.apps[0].clone())
    }

    /// The app of merchant `name`.
    pub fn find(&self, name: &str) -> Option<&Arc<App>> {
        self.apps.iter().find(|a| a.config.merchant.name == name)
    }

    pub fn status(&self) -> Result<inspect::Status, OpError> {
        let app = self.app();
        inspect::status(
            &app.store,
            &app.targets,
            (self.upstream)(&app.config.merchant.name),
            app.config.store.history_days,
        )
    }

    /// Each merchant with its upstream's health, for the overview.
    pub fn merchants(&self) -> Vec<serde_json::Value> {
        let selected = self.app().config.merchant.name.clone();
        self.apps
            .iter()
            .map(|a| {
                let m = &a.config.merchant;
                let up = (self.upstream)(&m.name);
                json!({
                    "name": m.name,
                    "display_name": m.display_name,
                    "selected": m.name == selected,
                    "key_rejected": up.key_rejected,
                    "last_successful_poll": up.last_successful_poll,
                    "consecutive_failed_polls": up.consecutive_failed_polls,
                })
            })
            .collect()
    }
}

/// Picks the merchant a request names in `?merchant=` (404 naming the
/// merchants there are when none is called that) for [`Admin::app`].
async fn select_merchant(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let wanted = request.uri().query().and_then(|q| {
        url_decode_pairs(q)
            .into_iter()
            .find(|(k, _)| k == "merchant")
            .map(|(_, v)| v)
    });
    let app = match wanted.as_deref().filter(|m| !m.is_empty()) {
        None => admin.apps[0].clone(),
        Some(name) => match admin.find(name) {
            Some(app) => app.clone(),
            None => {
                let names: Vec<&str> = admin
                    .apps
                    .iter()
                    .map(|a| a.config.merchant.name.as_str())
                    .collect();
                return error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no merchant is called `{name}`: expected one of {}",
                        names.join(", ")
                    ),
                );
            }
        },
    };
    SELECTED.scope(app, next.run(request)).await
}

/// `a=1&b=x%20y` as pairs, percent- and `+`-decoded (none when unreadable).
fn url_decode_pairs(query: &str) -> Vec<(String, String)> {
    format!("/?{query}")
        .parse()
        .ok()
        .and_then(|uri| axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).ok())
        .map(|q| q.0)
        .unwrap_or_default()
}

/// The token, the sessions and the sign-in limits of one listener.
pub struct Access {
    /// A random key of this process, from the OS: token digests, session
    /// ids' CSRF tokens.
    key: [u8; 32],
    /// The token's HMAC under `key`, compared with the HMAC of what is given.
    token: Option<[u8; 32]>,
    public_host: Option<String>,
    pub sessions: Sessions,
    pub limiter: Limiter,
    /// When a refused `Host` was last logged (at most once a minute).
    host_refused_logged: Mutex<Option<Instant>>,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], text: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is a broken machine; nothing sensible can be
    // done without it, and a predictable session id would be worse.
    getrandom::fill(&mut bytes).expect("the operating system's random generator works");
    bytes
}

/// What a request's `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Bearer {
    /// No header, or not `Bearer <something>`: never a match.
    Missing,
    Valid,
    Wrong,
}

impl Access {
    pub fn new(config: &crate::config::AdminConfig) -> Access {
        let key = random_bytes::<32>();
        let token = config
            .token
            .as_ref()
            .map(|t| mac(&key, t.expose_secret().as_bytes()));
        Access {
            key,
            token,
            public_host: config.public_host.clone(),
            sessions: Sessions::new(config.session_ttl),
            limiter: Limiter::default(),
            host_refused_logged: Mutex::new(None),
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `given` is the token: fixed-length digests compared in
    /// constant time.
    pub fn is_token(&self, given: &str) -> bool {
        self.token.is_some_and(|token| {
            let given = mac(&self.key, given.as_bytes());
            bool::from(given.ct_eq(&token))
        })
    }

    /// The `Authorization: Bearer` header, judged.
    pub fn bearer(&self, headers: &HeaderMap) -> Bearer {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        match given {
            None => Bearer::Missing,
            Some(t) if self.is_token(t) => Bearer::Valid,
            Some(_) => Bearer::Wrong,
        }
    }

    /// The signed-in session a console request carries, if any.
    pub fn session(&self, headers: &HeaderMap) -> Option<String> {
        let id = cookie(headers, crate::console::COOKIE)?;
        self.sessions.alive(id).then(|| id.to_owned())
    }

    /// The CSRF token of the console's forms: bound to the session (or,
    /// without a token, to this process).
    pub fn csrf(&self, session: Option<&str>) -> String {
        let text = format!("poomgo-notifier csrf v2:{}", session.unwrap_or(""));
        hex(&mac(&self.key, text.as_bytes()))
    }

    pub fn csrf_ok(&self, session: Option<&str>, given: &str) -> bool {
        bool::from(self.csrf(session).as_bytes().ct_eq(given.as_bytes()))
    }

    /// Whether the `Host` a request was sent to is one this listener
    /// answers to: a loopback name, or with a token an IP address or
    /// `admin.public_host`.
    fn host_ok(&self, headers: &HeaderMap) -> bool {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if loopback_host(host) {
            return true;
        }
        if !self.has_token() {
            return false;
        }
        // An address, not a name (`http://192.0.2.7:9464/`, the CLI to a
        // daemon on a LAN address): DNS rebinding always sends a name.
        if host_name(host).parse::<IpAddr>().is_ok() {
            return true;
        }
        let Some(public) = self.public_host.as_deref() else {
            return false;
        };
        // `public_host` with or without a port: both match the name.
        host.eq_ignore_ascii_case(public) || host_name(host).eq_ignore_ascii_case(public)
    }

    /// Says, at most once a minute, that a request named a host this
    /// listener does not answer to: behind a proxy that passes the browser's
    /// `Host` on, that is the sign to set `admin.public_host`.
    fn log_refused_host(&self, headers: &HeaderMap) {
        let mut last = self
            .host_refused_logged
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(60)) {
            return;
        }
        *last = Some(Instant::now());
        let host: String = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(100)
            .collect();
        tracing::warn!(
            %host,
            "the admin listener refused a request for another host name (403): behind a proxy, set `admin.public_host` to the name it serves (said at most once a minute)"
        );
    }
}

/// The console's sign-ins: random ids from the OS generator, each with its
/// issue time, in this process's memory. Signing out ends one; a restart
/// (which is how a new token takes effect) ends them all, and so does
/// `session_ttl` passing.
pub struct Sessions {
    ttl: std::time::Duration,
    open: Mutex<HashMap<String, Instant>>,
}

/// At most this many sessions at once; the oldest ends first.
const MAX_SESSIONS: usize = 1_000;

impl Sessions {
    fn new(ttl: std::time::Duration) -> Sessions {
        Sessions {
            ttl,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A new session's id (the cookie's value).
    pub fn start(&self) -> String {
        let id = hex(&random_bytes::<32>());
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, issued| now.duration_since(*issued) < self.ttl);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
        {
            open.remove(&oldest);
        }
        open.insert(id.clone(), now);
        id
    }

    fn alive(&self, id: &str) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(id) {
            Some(issued) if issued.elapsed() < self.ttl => true,
            Some(_) => {
                open.remove(id);
                false
            }
            None => false,
        }
    }

    pub fn end(&self, id: &str) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// How long a session lasts (the cookie's `Max-Age`).
    pub fn ttl(&self) -> std::time::Duration {
        self.ttl
    }
}

/// Wrong tokens per client address: [`Limiter::FREE`] a minute, then the
/// address waits a minute, twice as long at each further lock-out, up to
/// [`Limiter::LONGEST`]. Behind a proxy every client shares the proxy's
/// address, so the limit is the proxy's as a whole.
#[derive(Default)]
pub struct Limiter {
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    clients: HashMap<IpAddr, Failures>,
    /// Failures not yet in a log line, and when the last line was written.
    unlogged: u32,
    last_log: Option<Instant>,
}

struct Failures {
    /// Failures since `since`, at most a minute ago.
    count: u32,
    since: Instant,
    /// Lock-outs so far (the next one lasts 2^strikes minutes).
    strikes: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

impl Limiter {
    pub const FREE: u32 = 10;
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
    pub const LONGEST: std::time::Duration = std::time::Duration::from_secs(15 * 60);
    /// Addresses remembered at most; quiet ones are forgotten first.
    const CLIENTS: usize = 10_000;

    /// What failures are counted by: the address, or for IPv6 its /64 (one
    /// host can have a whole /64 of addresses).
    fn key(client: IpAddr) -> IpAddr {
        match client {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
            v4 => v4,
        }
    }

    /// `Err(wait)` while `client` is locked out.
    pub fn check(&self, client: IpAddr) -> Result<(), std::time::Duration> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state
            .clients
            .get(&Self::key(client))
            .and_then(|f| f.locked_until)
        {
            Some(until) if until > Instant::now() => Err(until - Instant::now()),
            _ => Ok(()),
        }
    }

    /// A wrong token from `client`.
    pub fn failed(&self, client: IpAddr) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let client = Self::key(client);
        if state.clients.len() >= Self::CLIENTS && !state.clients.contains_key(&client) {
            state
                .clients
                .retain(|_, f| now.duration_since(f.last) < Self::LONGEST);
            if state.clients.len() >= Self::CLIENTS
                && let Some(quietest) = state
                    .clients
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| *k)
            {
                state.clients.remove(&quietest);
            }
        }
        let f = state.clients.entry(client).or_insert(Failures {
            count: 0,
            since: now,
            strikes: 0,
            locked_until: None,
            last: now,
        });
        if now.duration_since(f.since) >= Self::WINDOW {
            f.count = 0;
            f.since = now;
        }
        if now.duration_since(f.last) >= std::time::Duration::from_secs(3600) {
            f.strikes = 0;
        }
        f.count += 1;
        f.last = now;
        let mut locked = None;
        if f.count >= Self::FREE {
            let wait = (Self::WINDOW * 2u32.pow(f.strikes.min(4))).min(Self::LONGEST);
            f.locked_until = Some(now + wait);
            f.strikes += 1;
            f.count = 0;
            f.since = now;
            locked = Some(wait);
        }
        state.unlogged += 1;
        let due = state
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Self::WINDOW);
        if due || locked.is_some() {
            tracing::warn!(
                failures = state.unlogged,
                client = %client,
                locked_out_secs = locked.map(|w| w.as_secs()),
                "admin sign-in refused: wrong token (failures are summed up here at most once a minute, and on each lock-out)"
            );
            state.unlogged = 0;
            state.last_log = Some(now);
        }
    }

    /// The right token from `client`: its count starts again.
    pub fn succeeded(&self, client: IpAddr) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clients
            .remove(&Self::key(client));
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

/// The name part of a `Host` value (`[::1]:9464` → `::1`, `a:80` → `a`).
fn host_name(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    }
}

/// Whether `host` names this machine.
fn loopback_host(host: &str) -> bool {
    let name = host_name(host);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The address a request came from ([`serve`] records it); unspecified
/// when served otherwise.
fn client_of(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

/// What the guard learnt about a request, for the handlers: the client's
/// address and the console session it carries.
#[derive(Clone, Debug)]
pub struct Caller {
    pub client: IpAddr,
    pub session: Option<String>,
}

/// Paths open without a token (to monitors), behind the `Host` check still.
fn monitor(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics")
}

/// The rules every request goes through before its handler; see the module
/// docs.
async fn guard(State(access): State<Arc<Access>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let api = path.starts_with("/api/");
    let headers = request.headers();
    let writes = request.method() != Method::GET && request.method() != Method::HEAD;
    if !access.host_ok(headers) {
        access.log_refused_host(headers);
        return refuse(
            api,
            StatusCode::FORBIDDEN,
            if access.has_token() {
                "this listener answers only to a loopback name (localhost, 127.0.0.1), an IP address, or the name set as `admin.public_host`"
            } else {
                "without `admin.token` the admin listener answers only to a loopback address (localhost, 127.0.0.1); set a token to reach it by another name"
            },
        );
    }
    if monitor(&path) {
        return next.run(request).await;
    }
    if writes && cross_site(headers) {
        return refuse(
            api,
            StatusCode::FORBIDDEN,
            "a state-changing request from another site is refused",
        );
    }
    let client = client_of(&request);
    let session = access.session(headers);
    if access.has_token() {
        let bearer = access.bearer(headers);
        let signing_in = path == "/login" && writes;
        if bearer != Bearer::Missing || signing_in {
            if let Err(wait) = access.limiter.check(client) {
                return too_many(api, wait);
            }
        }
        match bearer {
            Bearer::Valid => access.limiter.succeeded(client),
            Bearer::Wrong => access.limiter.failed(client),
            Bearer::Missing => {}
        }
        if api && bearer != Bearer::Valid {
            return refuse(
                true,
                StatusCode::UNAUTHORIZED,
                "send `Authorization: Bearer <admin.token>`",
            );
        }
        if !api && !crate::console::public(&path) && session.is_none() && bearer != Bearer::Valid {
            return crate::console::to_login(request.uri());
        }
    }
    request.extensions_mut().insert(Caller { client, session });
    next.run(request).await
}

fn too_many(api: bool, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut answer = refuse(
        api,
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many wrong tokens from this address: try again in {secs} s"),
    );
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    answer
}

/// The headers every answer carries (see the module docs); a handler's own
/// `Cache-Control` (the stylesheet's) stays.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        h.insert(name, header::HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    response
}

fn refuse(api: bool, status: StatusCode, message: &str) -> Response {
    if api {
        error(status, message.to_owned())
    } else {
        crate::console::message_page(status, message)
    }
}

/// The API, the console and `monitors` (`/healthz`, `/metrics`: open
/// without a token), with their access rules and headers.
pub fn router(admin: Admin, monitors: Router) -> Router {
    let access = admin.access.clone();
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
        .layer(middleware::from_fn_with_state(
            admin.clone(),
            select_merchant,
        ))
        .with_state(admin)
        .merge(monitors)
        .layer(middleware::from_fn_with_state(access, guard))
        .layer(middleware::from_fn(security_headers))
}

/// How [`serve`] bounds its connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// A request's headers must have arrived within this.
    pub header_timeout: std::time::Duration,
    /// Connections open at once; one more is closed at once.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown`, each connection with the
/// client's address recorded (for [`Limiter`]) and within `limits`. In-flight
/// requests finish at shutdown; idle connections close.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    mut shutdown: crate::shutdown::Shutdown,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut refused_logged: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, mostly: wait a moment
                    // instead of spinning.
                    tracing::warn!(error = %e, "the admin listener cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            drop(stream);
            if refused_logged.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "the admin listener is at `admin.max_connections`; new connections are closed (said at most once a minute)"
                );
                refused_logged = Some(Instant::now());
            }
            continue;
        };
        let router = router.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let mut router = router.clone();
                    async move {
                        tower_service::Service::call(
                            &mut router,
                            request.map(axum::body::Body::new),
                        )
                        .await
                    }
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.wait() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

#[derive(Deserialize)]
struct Filter {
    /// Read by [`select_merchant`]; `search` without it looks at every merchant.
    merchant: Option<String>,
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

/// Searches one merchant (`only`), or every merchant in config order; each
/// hit says whose it is. At most [`SEARCH_TIMELINES`] timelines in all.
pub fn search_merchants(
    admin: &Admin,
    only: Option<&str>,
    query: &str,
) -> Result<Vec<inspect::Found>, OpError> {
    let mut out = Vec::new();
    for app in admin.apps.iter() {
        if only.is_some_and(|m| !m.is_empty() && m != app.config.merchant.name) {
            continue;
        }
        let left = SEARCH_TIMELINES.saturating_sub(out.len());
        out.extend(inspect::search(
            &app.store,
            app.sender.renderer(),
            query,
            left,
        )?);
    }
    Ok(out)
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
    let found = search_merchants(&admin, f.merchant.as_deref(), &q);
    answer(found.map(|results| json!({ "query": q.trim(), "results": results })))
}

async fn invoice(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let app = admin.app();
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
    let list = operate::outbox(
        &admin.app().store,
        &admin.app().targets,
        f.target.as_deref(),
    );
    answer(limited(list, f.limit))
}

async fn dead_letters(State(admin): State<Admin>, Query(f): Query<Filter>) -> Response {
    let list = operate::dead_letters(
        &admin.app().store,
        &admin.app().targets,
        f.target.as_deref(),
    );
    answer(limited(list, f.limit))
}

async fn dead_letter(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    answer(operate::dead_letter(
        &admin.app().store,
        &admin.app().targets,
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
    act(&admin.app(), true, |app| {
        operate::replay(&app.store, &app.targets, &[id])
    })
}

async fn replay_all(State(admin): State<Admin>, Query(f): Query<Filter>) -> Response {
    act(&admin.app(), true, |app| {
        operate::replay_all(&app.store, &app.targets, f.target.as_deref())
    })
}

async fn purge(State(admin): State<Admin>, Query(f): Query<Filter>) -> Response {
    let older_than = match parse_older_than(f.older_than.as_deref()) {
        Ok(d) => d,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    act(&admin.app(), false, |app| {
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
    act(&admin.app(), true, |app| {
        operate::retry_now(&app.store, &app.targets, f.target.as_deref(), f.seq)
            .map(|n| json!({ "retried": n }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_locks_an_address_out_after_ten_failures_and_counts_ipv6_by_64() {
        let limiter = Limiter::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..Limiter::FREE - 1 {
            limiter.failed(a);
        }
        assert!(limiter.check(a).is_ok());
        limiter.failed(a);
        let wait = limiter.check(a).unwrap_err();
        assert!(wait > std::time::Duration::from_secs(55), "{wait:?}");
        assert!(limiter.check(b).is_ok(), "another address is not held up");
        // One IPv6 host changing addresses within its /64 is one client.
        for i in 0..Limiter::FREE {
            limiter.failed(format!("2001:db8::{i:x}").parse().unwrap());
        }
        assert!(limiter.check("2001:db8::ffff".parse().unwrap()).is_err());
        assert!(limiter.check("2001:db8:0:1::1".parse().unwrap()).is_ok());
        // A success starts the count again.
        limiter.failed(b);
        limiter.succeeded(b);
        assert!(!limiter.state.lock().unwrap().clients.contains_key(&b));
    }

    #[test]
    fn the_limiter_remembers_a_bounded_number_of_addresses() {
        let limiter = Limiter::default();
        for i in 0..(Limiter::CLIENTS as u32 + 50) {
            limiter.failed(IpAddr::from(i.to_be_bytes()));
        }
        assert!(limiter.state.lock().unwrap().clients.len() <= Limiter::CLIENTS);
    }

    #[test]
    fn tokens_compare_by_digest_and_bearer_needs_the_scheme() {
        let config = crate::config::AdminConfig {
            token: Some("0123456789abcdef0123456789abcdef".to_owned().into()),
            ..Default::default()
        };
        let access = Access::new(&config);
        assert!(access.is_token("0123456789abcdef0123456789abcdef"));
        assert!(!access.is_token("0123456789abcdef0123456789abcde"));
        assert!(!access.is_token(""));
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            access.bearer(&h)
        };
        assert_eq!(access.bearer(&HeaderMap::new()), Bearer::Missing);
        assert_eq!(with("Bearer "), Bearer::Missing);
        assert_eq!(with("0123456789abcdef0123456789abcdef"), Bearer::Missing);
        assert_eq!(
            with("Basic 0123456789abcdef0123456789abcdef"),
            Bearer::Missing
        );
        assert_eq!(
            with("bearer 0123456789abcdef0123456789abcdef"),
            Bearer::Valid
        );
        assert_eq!(with("Bearer nope"), Bearer::Wrong);
        // Without a token nothing is a token.
        let open = Access::new(&crate::config::AdminConfig::default());
        assert!(!open.is_token(""));
    }
}
