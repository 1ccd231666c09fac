//! The operator console: server-rendered pages on the admin listener that
//! answer "what happened to this order?" and fix what is stuck.
//!
//! | page | what |
//! |---|---|
//! | `/` | overview: last polls, targets, the upstream's state (refreshes every 30 s) |
//! | `/search?q=` | an order code, tracking number, invoice id or event id → the invoice's timeline |
//! | `/invoices/{id}` | one invoice's timeline |
//! | `/dead-letters` | dead letters: replay one, replay all (of a target), purge |
//! | `/outbox` | pending entries: retry now, per entry or target |
//! | `/preview` | a target's message for a change kind (Block Kit JSON and a readable rendering) |
//!
//! Decisions:
//! - **Pages are handlebars templates with HTML escaping on** (the message
//!   templates turn it off; here everything upstream-supplied is text). They
//!   are compiled in from `templates/console/`; no JavaScript is needed
//!   (the overview refreshes with a meta tag).
//! - **The same views as the API** ([`crate::inspect`], [`crate::operate`]):
//!   a button and `curl` do one thing one way.
//! - **Sign-in.** With `admin.token` set, `/login` takes the token once and
//!   sets `poomgo_console`, an HttpOnly, SameSite=Strict cookie holding a
//!   random session id ([`crate::admin::Sessions`]: it expires after
//!   `admin.session_ttl`, and signing out ends it). Forms POST with a CSRF
//!   token bound to the session; access rules are in [`crate::admin`].
//! - **Links and banners.** Every value put into a URL goes through
//!   `url_encode`; the banner after an action is chosen by code from a fixed
//!   set (`Done`), never taken from the query string.

use std::sync::OnceLock;

use axum::{
    Extension, Form, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, Uri, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use handlebars::Handlebars;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::{Admin, Caller, parse_older_than, wake};
use crate::event::EventType;
use crate::operate::{self, OpError};

/// At most this many rows on the dead-letter and outbox pages (the count
/// says how many there are; the API and the CLI list them all).
const PAGE_ROWS: usize = 500;

/// At most this many timelines on one search page (the rest are listed).
const SEARCH_TIMELINES: usize = 5;

/// The console's session cookie.
pub const COOKIE: &str = "poomgo_console";

const PAGES: [(&str, &str); 9] = [
    ("layout", include_str!("../templates/console/layout.hbs")),
    (
        "timeline",
        include_str!("../templates/console/timeline.hbs"),
    ),
    (
        "overview",
        include_str!("../templates/console/overview.hbs"),
    ),
    ("search", include_str!("../templates/console/search.hbs")),
    (
        "dead_letters",
        include_str!("../templates/console/dead_letters.hbs"),
    ),
    ("outbox", include_str!("../templates/console/outbox.hbs")),
    ("preview", include_str!("../templates/console/preview.hbs")),
    ("login", include_str!("../templates/console/login.hbs")),
    ("message", include_str!("../templates/console/message.hbs")),
];

const CSS: &str = include_str!("../templates/console/console.css");

fn pages() -> &'static Handlebars<'static> {
    static PAGES_REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    PAGES_REGISTRY.get_or_init(|| {
        // HTML escaping is handlebars' default and stays on.
        let mut h = Handlebars::new();
        // {{kst time}}: an RFC 3339 time as Korea time, `2026-12-01 19:05`.
        handlebars::handlebars_helper!(kst: |t: Json| t
            .as_str()
            .and_then(crate::render::kst)
            .unwrap_or_default());
        h.register_helper("kst", Box::new(kst));
        // {{url_encode value}}: a value as one URL component (path segment
        // or query value); handlebars' HTML escaping still applies on top.
        handlebars::handlebars_helper!(url_encode: |v: Json| match v {
            Value::String(s) => url_component(s),
            Value::Null => String::new(),
            other => url_component(&other.to_string()),
        });
        h.register_helper("url_encode", Box::new(url_encode));
        for (name, source) in PAGES {
            h.register_template_string(name, source)
                .expect("the console templates compile (a unit test checks them)");
        }
        h
    })
}

/// Paths served without a session: the sign-in page and the stylesheet.
pub fn public(path: &str) -> bool {
    matches!(path, "/login" | "/console.css")
}

pub fn routes() -> Router<Admin> {
    Router::new()
        .route("/", get(overview))
        .route("/console.css", get(css))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/search", get(search))
        .route("/invoices/{id}", get(invoice))
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/replay", post(replay_all))
        .route("/dead-letters/purge", post(purge))
        .route("/dead-letters/{id}/replay", post(replay))
        .route("/outbox", get(outbox))
        .route("/outbox/retry", post(retry))
        .route("/preview", get(preview))
}

/// Renders `page` inside the layout.
fn render(admin: &Admin, caller: &Caller, page: &str, title: &str, mut data: Value) -> Response {
    data["title"] = json!(title);
    data["csrf"] = json!(admin.access.csrf(caller.session.as_deref()));
    data["signed_in"] = json!(admin.access.has_token());
    data["nav"] = json!(page);
    // With several merchants every page is about one (`?merchant=`), shown
    // in the header with the others a click away; links and forms carry it.
    if admin.apps.len() > 1 {
        let name = admin.app().config.merchant.name.clone();
        let q = url_component(&name);
        data["merchants"] = json!(admin.merchants());
        data["mq"] = json!(format!("?merchant={q}"));
        data["ma"] = json!(format!("&merchant={q}"));
        data["merchant_name"] = json!(name);
    }
    match pages().render(page, &data) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(page, error = %e, "a console page failed to render");
            message_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this page failed to render; the log says why",
            )
        }
    }
}

/// A page with one message (errors, refusals).
pub fn message_page(status: StatusCode, message: &str) -> Response {
    let html = pages()
        .render(
            "message",
            &json!({ "title": "poomgo-notifier", "message": message }),
        )
        .unwrap_or_else(|_| message.to_owned());
    (status, Html(html)).into_response()
}

fn failed(e: OpError) -> Response {
    let status = match e {
        OpError::NoTarget(_) | OpError::NoDeadLetter(_) => StatusCode::NOT_FOUND,
        OpError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    message_page(status, &e.to_string())
}

/// Where an unsigned request goes: `/login`, coming back afterwards.
pub fn to_login(uri: &Uri) -> Response {
    let back = uri.path_and_query().map_or("/", |p| p.as_str());
    Redirect::to(&format!("/login?next={}", percent_encode(back))).into_response()
}

/// `s` as one URL component: everything but unreserved characters
/// percent-encoded (`/`, `&`, `#`, `?` included).
pub fn url_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only a path of this site (never `//evil.example` or `https://…`), with
/// anything but visible ASCII percent-encoded so it is a valid `Location`.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p
            .bytes()
            .map(|b| match b {
                0x21..=0x7e => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect(),
        _ => "/".into(),
    }
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

#[derive(Deserialize, Default)]
struct PageQuery {
    /// Read by the admin's merchant selection; search looks at every
    /// merchant without it.
    merchant: Option<String>,
    q: Option<String>,
    target: Option<String>,
    next: Option<String>,
    done: Option<String>,
    /// The count a `done` banner shows.
    n: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn overview(State(admin): State<Admin>, Extension(caller): Extension<Caller>) -> Response {
    match admin.status() {
        Ok(status) => render(
            &admin,
            &caller,
            "overview",
            "Overview",
            json!({ "status": status, "refresh": true }),
        ),
        Err(e) => failed(e),
    }
}

async fn login_page(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<PageQuery>,
) -> Response {
    if !admin.access.has_token() {
        return Redirect::to("/").into_response();
    }
    render(
        &admin,
        &caller,
        "login",
        "Sign in",
        json!({ "next": local_path(q.next.as_deref()) }),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(form.next.as_deref());
    if !admin.access.has_token() {
        return Redirect::to(&next).into_response();
    }
    if !admin.access.is_token(form.token.trim()) {
        // Counted, and logged in a summary line (see `admin::Limiter`).
        admin.access.limiter.failed(caller.client);
        let mut page = render(
            &admin,
            &caller,
            "login",
            "Sign in",
            json!({ "next": next, "wrong": true }),
        );
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        return page;
    }
    admin.access.limiter.succeeded(caller.client);
    if let Some(old) = &caller.session {
        admin.access.sessions.end(old);
    }
    let session = admin.access.sessions.start();
    // `Secure` when a TLS proxy says the browser came over HTTPS.
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        admin.access.sessions.ttl().as_secs(),
        if secure { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

async fn logout(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = check_csrf(&admin, &caller, &form.csrf) {
        return refused;
    }
    if let Some(session) = &caller.session {
        admin.access.sessions.end(session);
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

async fn search(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<PageQuery>,
) -> Response {
    let query = q.q.unwrap_or_default();
    // The timelines right here: an order is often a few parcels. Every
    // merchant is searched unless the page names one.
    let found = match crate::admin::search_merchants(&admin, q.merchant.as_deref(), &query) {
        Ok(found) => found,
        Err(e) => return failed(e),
    };
    // Each timeline says whose invoice it is (ids repeat across merchants).
    let invoices: Vec<Value> = found
        .iter()
        .filter_map(|f| {
            let mut v = serde_json::to_value(f.invoice.as_ref()?).ok()?;
            v["merchant"] = json!(f.merchant);
            Some(v)
        })
        .collect();
    render(
        &admin,
        &caller,
        "search",
        "Search",
        json!({
            "query": query.trim(),
            "searched": !query.trim().is_empty(),
            "found": found,
            "more": found.len() > SEARCH_TIMELINES,
            "invoices": invoices,
            "done": Done::banner(q.done.as_deref(), q.n),
        }),
    )
}

async fn invoice(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let app = admin.app();
    match crate::inspect::invoice(&app.store, app.sender.renderer(), &id) {
        Ok(Some(invoice)) => render(
            &admin,
            &caller,
            "search",
            "Invoice",
            json!({ "query": id, "searched": true, "invoices": [invoice], "done": Done::banner(q.done.as_deref(), q.n) }),
        ),
        Ok(None) => message_page(
            StatusCode::NOT_FOUND,
            &format!("no invoice {id} is tracked or in the history"),
        ),
        Err(e) => failed(e),
    }
}

fn target_names(admin: &Admin) -> Vec<String> {
    admin.app().targets.iter().map(|t| t.name.clone()).collect()
}

/// A page listing one of the queues (at most [`PAGE_ROWS`] rows).
fn queue_page<T: serde::Serialize>(
    admin: &Admin,
    caller: &Caller,
    page: &str,
    title: &str,
    target: Option<String>,
    done: Option<String>,
    list: Result<Vec<T>, OpError>,
) -> Response {
    match list {
        Ok(list) => render(
            admin,
            caller,
            page,
            title,
            json!({
                "count": list.len(),
                "shown": list.len().min(PAGE_ROWS),
                "list": &list[..list.len().min(PAGE_ROWS)],
                "targets": target_names(admin),
                "target": target,
                "done": done,
            }),
        ),
        Err(e) => failed(e),
    }
}

async fn dead_letters(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<PageQuery>,
) -> Response {
    let target = q.target.filter(|t| !t.is_empty());
    let list = operate::dead_letters(&admin.app().store, &admin.app().targets, target.as_deref());
    let done = Done::banner(q.done.as_deref(), q.n);
    queue_page(
        &admin,
        &caller,
        "dead_letters",
        "Dead letters",
        target,
        done,
        list,
    )
}

async fn outbox(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<PageQuery>,
) -> Response {
    let target = q.target.filter(|t| !t.is_empty());
    let list = operate::outbox(&admin.app().store, &admin.app().targets, target.as_deref());
    let done = Done::banner(q.done.as_deref(), q.n);
    queue_page(&admin, &caller, "outbox", "Outbox", target, done, list)
}

async fn preview(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<PageQuery>,
) -> Response {
    let app = admin.app();
    let kinds: Vec<&str> = EventType::ALL.iter().map(|k| k.as_str()).collect();
    let kind: EventType = q
        .kind
        .as_deref()
        .and_then(|k| k.parse().ok())
        .unwrap_or(EventType::StatusChanged);
    let target = q
        .target
        .as_deref()
        .and_then(|name| app.targets.iter().find(|t| t.name == name))
        .or(app.targets.first());
    let mut data = json!({
        "targets": target_names(&admin),
        "kinds": kinds,
        "kind": kind.as_str(),
    });
    if let Some(target) = target {
        let now = chrono::Utc::now();
        let event = crate::samples::event(kind, &app.statuses, now);
        let entry = target.entry_for(&event, now.timestamp_millis());
        data["target"] = json!(target.name);
        data["target_kind"] = json!(target.kind.as_str());
        data["wants"] = json!(target.wants(&event));
        match app.sender.request(target, &[&entry], None, now.timestamp()) {
            Ok(request) => {
                let body = serde_json::from_slice::<Value>(&request.body)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| String::from_utf8_lossy(&request.body).into_owned());
                data["body"] = json!(body);
                if target.kind.is_chat() {
                    data["readable"] = json!(target.readable(&request.body));
                }
            }
            Err(e) => data["error"] = json!(e.to_string()),
        }
    }
    render(&admin, &caller, "preview", "Template preview", data)
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    target: Option<String>,
    seq: Option<String>,
    older_than: Option<String>,
    /// The page to go back to.
    back: Option<String>,
}

fn check_csrf(admin: &Admin, caller: &Caller, given: &str) -> Option<Response> {
    (!admin.access.csrf_ok(caller.session.as_deref(), given)).then(|| {
        tracing::warn!("console form refused: missing or wrong CSRF token");
        message_page(
            StatusCode::FORBIDDEN,
            "this form is out of date or came from another site: reload the page and try again",
        )
    })
}

/// What an action did, for the banner on the page it returns to. The
/// banner's words are chosen here by code; the query string carries only the
/// code and a count, so no link can make the console say something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Replayed(usize),
    Purged(usize),
    Retried(usize),
}

impl Done {
    fn code(self) -> (&'static str, u64) {
        match self {
            Done::Replayed(n) => ("replayed", n as u64),
            Done::Purged(n) => ("purged", n as u64),
            Done::Retried(n) => ("retried", n as u64),
        }
    }

    /// The banner for a `done` code and count from a query string; nothing
    /// for an unknown code.
    fn banner(code: Option<&str>, n: Option<u64>) -> Option<String> {
        let n = n.unwrap_or(0);
        Some(match code? {
            "replayed" => format!("replayed {n} event(s): they are due again"),
            "purged" => format!("purged {n} dead letter(s)"),
            "retried" => format!("{n} entr(ies) due now"),
            _ => return None,
        })
    }

    /// Back to the page, saying what was done.
    fn redirect(self, back: Option<&str>) -> Response {
        let back = local_path(back);
        let sep = if back.contains('?') { '&' } else { '?' };
        let (code, n) = self.code();
        Redirect::to(&format!("{back}{sep}done={code}&n={n}")).into_response()
    }
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

async fn replay(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = check_csrf(&admin, &caller, &form.csrf) {
        return refused;
    }
    let app = admin.app();
    match operate::replay(&app.store, &app.targets, std::slice::from_ref(&id)) {
        Ok(d) => {
            wake(&app);
            tracing::info!(event_id = %id, "dead letter replayed from the console");
            Done::Replayed(d.entries.len()).redirect(form.back.as_deref())
        }
        Err(e) => failed(e),
    }
}

async fn replay_all(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = check_csrf(&admin, &caller, &form.csrf) {
        return refused;
    }
    let app = admin.app();
    let target = nonempty(form.target);
    match operate::replay_all(&app.store, &app.targets, target.as_deref()) {
        Ok(d) => {
            wake(&app);
            tracing::info!(
                replayed = d.entries.len(),
                target = target.as_deref().unwrap_or("all"),
                "dead letters replayed from the console"
            );
            Done::Replayed(d.entries.len()).redirect(form.back.as_deref())
        }
        Err(e) => failed(e),
    }
}

async fn purge(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = check_csrf(&admin, &caller, &form.csrf) {
        return refused;
    }
    let older_than = match parse_older_than(form.older_than.as_deref()) {
        Ok(d) => d,
        Err(m) => return message_page(StatusCode::BAD_REQUEST, &m),
    };
    let app = admin.app();
    let target = nonempty(form.target);
    match operate::purge(&app.store, &app.targets, target.as_deref(), older_than) {
        Ok(d) => {
            tracing::info!(
                purged = d.entries.len(),
                target = target.as_deref().unwrap_or("all"),
                "dead letters purged from the console"
            );
            Done::Purged(d.entries.len()).redirect(form.back.as_deref())
        }
        Err(e) => failed(e),
    }
}

async fn retry(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = check_csrf(&admin, &caller, &form.csrf) {
        return refused;
    }
    let seq = match nonempty(form.seq).map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return message_page(StatusCode::BAD_REQUEST, "`seq` is not an entry number");
        }
    };
    let app = admin.app();
    let target = nonempty(form.target);
    match operate::retry_now(&app.store, &app.targets, target.as_deref(), seq) {
        Ok(n) => {
            wake(&app);
            Done::Retried(n).redirect(form.back.as_deref())
        }
        Err(e) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_compiles_and_escapes_html() {
        let out = pages()
            .render(
                "message",
                &json!({ "title": "t", "message": "<script>alert(1)</script>" }),
            )
            .unwrap();
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(!out.contains("<script>alert"), "{out}");
    }

    #[test]
    fn times_show_in_korea_time() {
        let mut h = pages().clone();
        h.register_template_string("t", "{{kst at}}|{{kst missing}}")
            .unwrap();
        let out = h
            .render("t", &json!({ "at": "2026-12-01T10:05:00Z" }))
            .unwrap();
        assert_eq!(out, "2026-12-01 19:05|");
    }

    #[test]
    fn banners_come_from_codes_and_links_encode_values() {
        assert_eq!(
            Done::banner(Some("replayed"), Some(3)).as_deref(),
            Some("replayed 3 event(s): they are due again")
        );
        assert_eq!(
            Done::banner(Some("Session expired: go to https://evil.example"), None),
            None
        );
        let mut h = pages().clone();
        h.register_template_string("t", "<a href=\"/search?q={{url_encode q}}\">")
            .unwrap();
        let out = h.render("t", &json!({ "q": "A&done=x#\"<b> 배" })).unwrap();
        assert_eq!(
            out,
            "<a href=\"/search?q=A%26done%3Dx%23%22%3Cb%3E%20%EB%B0%B0\">"
        );
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/search?q=1")), "/search?q=1");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
        assert_eq!(
            local_path(Some("/search?q=배 송")),
            "/search?q=%EB%B0%B0%20%EC%86%A1"
        );
    }
}
