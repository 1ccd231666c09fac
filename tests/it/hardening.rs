//! The admin listener as an attacker tries it, on the real daemon: an empty
//! or short token, `Host` names (DNS rebinding, a proxy's public name),
//! malformed credentials, sessions (expiry, sign-out, restart), guessing
//! tokens, the headers every answer carries, slow and idle connections,
//! values in links and banners.

use std::io::{Read, Write};
use std::time::Duration;

use crate::console::{TOKEN, free_port};
use crate::daemon::{API_KEY, Daemon, config_with, sim};
use crate::support::{BIN, Recorder, Reply, eventually, output};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A daemon with `admin` lines (listen and token added) and one webhook
/// target, `erp` at `erp` (a closed port when empty).
async fn daemon_with(
    dir: &std::path::Path,
    sim: &poomgo_notifier::sim::Simulator,
    admin: &str,
    token: &str,
    erp: &str,
) -> Daemon {
    let erp = if erp.is_empty() {
        "http://127.0.0.1:9"
    } else {
        erp
    };
    let config = config_with(
        sim,
        dir,
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{}\"\ntoken = \"${{ADMIN_TOKEN}}\"\n{admin}\n[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{erp}/erp\"\n",
            free_port()
        ),
    );
    let daemon = Daemon::start_with(
        &config,
        &[("POOMGO_API_KEY", API_KEY), ("ADMIN_TOKEN", token)],
    )
    .await;
    daemon.wait_healthy("the baseline").await;
    daemon
}

async fn sign_in(daemon: &Daemon, token: &str) -> (u16, Option<String>) {
    let r = http()
        .post(format!("{}/login", daemon.admin))
        .form(&[("token", token), ("next", "/")])
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned());
    (r.status().as_u16(), cookie)
}

async fn get_with(daemon: &Daemon, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = http().get(format!("{}{path}", daemon.admin));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn an_empty_or_short_admin_token_is_refused_by_run_and_check() {
    let sim = sim(5).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        &sim,
        dir.path(),
        "[admin]\nlisten = \"0.0.0.0:19464\"\ntoken = \"${ADMIN_TOKEN}\"\n",
    );
    for token in ["", "t", "0123456789abcdef0123456789abcde"] {
        for command in ["run", "check"] {
            let mut c = std::process::Command::new(BIN);
            c.args([command, "--config"])
                .arg(&config)
                .env("POOMGO_API_KEY", API_KEY)
                .env("ADMIN_TOKEN", token);
            let out = output(c).await;
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_ne!(
                out.status.code(),
                Some(0),
                "{command} with {token:?}: {said}"
            );
            assert!(
                said.contains("`admin.token`")
                    && said.contains("at least 32")
                    && said.contains("openssl rand -hex 32"),
                "{command} with {token:?}: {said}"
            );
        }
    }
    // 32 characters: accepted.
    let mut c = std::process::Command::new(BIN);
    c.args(["check", "--config"])
        .arg(&config)
        .env("POOMGO_API_KEY", API_KEY)
        .env("ADMIN_TOKEN", "0123456789abcdef0123456789abcdef");
    let out = output(c).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn with_a_token_hosts_credentials_and_headers_are_checked_on_every_path() {
    let sim = sim(20).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon_with(
        dir.path(),
        &sim,
        "public_host = \"notifier.example.com\"",
        TOKEN,
        "",
    )
    .await;
    let bearer = format!("Bearer {TOKEN}");
    // No header, an empty one, another scheme, the token without a scheme:
    // never a match.
    for headers in [
        vec![],
        vec![("Authorization", "")],
        vec![("Authorization", "Bearer ")],
        vec![("Authorization", "Basic Zm9vOmJhcg==")],
        vec![("Authorization", TOKEN)],
    ] {
        let r = get_with(&daemon, "/api/status", &headers).await;
        assert_eq!(r.status().as_u16(), 401, "{headers:?}");
        let r = get_with(&daemon, "/", &headers).await;
        assert_eq!(r.status().as_u16(), 303, "{headers:?}");
    }
    // A DNS name pointed at 127.0.0.1 by another site: refused, with the
    // token too, and for the monitors' paths.
    let r = http()
        .post(format!(
            "{}/api/dead-letters/replay?target=erp",
            daemon.admin
        ))
        .header("Host", "rebind.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    for path in ["/api/status", "/", "/healthz", "/metrics"] {
        let r = get_with(
            &daemon,
            path,
            &[("Host", "rebind.evil.example"), ("Authorization", &bearer)],
        )
        .await;
        assert_eq!(r.status().as_u16(), 403, "{path}");
    }
    // The proxy's public name, with and without a port, and an address
    // (a LAN address the daemon listens on; rebinding always uses a name).
    for host in [
        "notifier.example.com",
        "NOTIFIER.example.com:443",
        "192.0.2.7:9464",
        "[2001:db8::7]:9464",
    ] {
        let r = get_with(
            &daemon,
            "/api/status",
            &[("Host", host), ("Authorization", &bearer)],
        )
        .await;
        assert_eq!(r.status().as_u16(), 200, "{host}");
        let r = get_with(&daemon, "/healthz", &[("Host", host)]).await;
        assert_eq!(r.status().as_u16(), 200, "{host}");
    }
    // Every answer carries the headers; pages and the API are not cached.
    let (_, session) = sign_in(&daemon, TOKEN).await;
    let session = session.unwrap();
    for (path, cookie) in [
        ("/", Some(&session)),
        ("/login", None),
        ("/api/status", None),
        ("/healthz", None),
        ("/metrics", None),
        ("/console.css", None),
    ] {
        let mut headers = vec![("Authorization", bearer.as_str())];
        if let Some(c) = cookie {
            headers = vec![("Cookie", c.as_str())];
        }
        let r = get_with(&daemon, path, &headers).await;
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let h = r.headers();
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            "{path}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        let cache = h["cache-control"].to_str().unwrap();
        if path == "/console.css" {
            assert!(cache.starts_with("max-age"), "{cache}");
        } else {
            assert_eq!(cache, "no-store", "{path}");
        }
    }
    let (code, log) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
    assert!(!log.contains(TOKEN));
    // The refusals are said once, naming the key that admits a proxy's name.
    assert_eq!(log.matches("set `admin.public_host`").count(), 1, "{log}");
}

#[tokio::test]
async fn sessions_expire_end_at_sign_out_and_at_a_restart_with_a_new_token() {
    let sim = sim(20).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon_with(dir.path(), &sim, "session_ttl = \"3s\"", TOKEN, "").await;
    let page = |cookie: String| {
        let daemon = &daemon;
        async move { get_with(daemon, "/dead-letters", &[("Cookie", &cookie)]).await }
    };
    let (_, a) = sign_in(&daemon, TOKEN).await;
    let (_, b) = sign_in(&daemon, TOKEN).await;
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a, b, "every sign-in is a new random session");
    let page_a = page(a.clone()).await;
    assert_eq!(page_a.status().as_u16(), 200);
    let html = page_a.text().await.unwrap();
    let csrf_a = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    // The CSRF token is bound to its session: B cannot use A's.
    let r = http()
        .post(format!("{}/logout", daemon.admin))
        .header("Cookie", &b)
        .form(&[("csrf", csrf_a.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Signing out ends A (and only A): the same cookie no longer opens a page.
    let r = http()
        .post(format!("{}/logout", daemon.admin))
        .header("Cookie", &a)
        .form(&[("csrf", csrf_a.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(page(a.clone()).await.status().as_u16(), 303);
    assert_eq!(page(b.clone()).await.status().as_u16(), 200);
    // B expires after session_ttl.
    eventually("B's session to expire", Duration::from_secs(15), || async {
        page(b.clone()).await.status().as_u16() == 303
    })
    .await;
    let (_, c) = sign_in(&daemon, TOKEN).await;
    let c = c.unwrap();
    let (code, _) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));

    // Rotating the token (a restart with a new one) ends every session.
    let new_token = "rotated-T0ken-0123456789abcdef-xyz";
    let config = dir.path().join("config.toml");
    let daemon = Daemon::start_with(
        &config,
        &[("POOMGO_API_KEY", API_KEY), ("ADMIN_TOKEN", new_token)],
    )
    .await;
    daemon.wait_healthy("the restart").await;
    let r = http()
        .get(format!("{}/dead-letters", daemon.admin))
        .header("Cookie", &c)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(sign_in(&daemon, TOKEN).await.0, 401);
    assert_eq!(sign_in(&daemon, new_token).await.0, 303);
    let (code, _) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn guessing_tokens_is_limited_per_address_and_logged_in_summary() {
    let sim = sim(20).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon_with(dir.path(), &sim, "", TOKEN, "").await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let guess = format!("guess-{i:04}-0123456789abcdef0123456789");
        if i % 2 == 0 {
            statuses.push(sign_in(&daemon, &guess).await.0);
        } else {
            let r = get_with(
                &daemon,
                "/api/status",
                &[("Authorization", &format!("Bearer {guess}"))],
            )
            .await;
            if r.status().as_u16() == 429 {
                assert!(r.headers().contains_key("retry-after"));
            }
            statuses.push(r.status().as_u16());
        }
    }
    assert!(
        statuses[..10].iter().all(|s| *s == 401),
        "the first ten are answered: {statuses:?}"
    );
    assert!(
        statuses[10..].iter().all(|s| *s == 429),
        "then the address waits: {statuses:?}"
    );
    // Locked out, even the right token waits (it is not even compared).
    assert_eq!(sign_in(&daemon, TOKEN).await.0, 429);
    let r = get_with(
        &daemon,
        "/api/status",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(r.status().as_u16(), 429);
    let (code, log) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
    let lines = log
        .lines()
        .filter(|l| l.contains("admin sign-in refused"))
        .count();
    assert!(
        (1..=2).contains(&lines),
        "a summary line and the lock-out, not one line per try: {lines}\n{log}"
    );
    assert!(
        log.contains("failures=10") || log.contains("failures=9"),
        "{log}"
    );
}

/// Reads until the server closes the connection (Ok(true)) or `limit`
/// passes (Ok(false)).
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // An answer (408, 400) before the close is fine.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_and_idle_connections_are_cut_off_and_capped() {
    let sim = sim(20).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon_with(
        dir.path(),
        &sim,
        "header_timeout = \"1s\"\nmax_connections = 8",
        TOKEN,
        "",
    )
    .await;
    let addr = daemon.admin.trim_start_matches("http://").to_owned();
    let slow = tokio::task::spawn_blocking(move || {
        // Eight sockets: some send half a header and stop, some send nothing,
        // some make one request and then idle (keep-alive).
        let mut slow: Vec<std::net::TcpStream> = (0..8)
            .map(|i| {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                match i % 3 {
                    0 => s
                        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                        .unwrap(),
                    1 => {
                        s.write_all(b"GET /console.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                            .unwrap();
                        let mut head = [0u8; 12];
                        s.read_exact(&mut head).unwrap();
                        assert_eq!(&head, b"HTTP/1.1 200");
                    }
                    _ => {}
                }
                s
            })
            .collect();
        // A ninth while they are open: over the cap, closed at once
        // (well before the header time-out).
        let started = std::time::Instant::now();
        let mut ninth = std::net::TcpStream::connect(&addr).unwrap();
        let _ = ninth.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let mut answer = Vec::new();
        ninth
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = ninth.read_to_end(&mut answer);
        let over_cap = (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        );
        // The slow ones are cut off by the header time-out.
        let cut: Vec<bool> = slow
            .iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(20)))
            .collect();
        (over_cap, cut)
    })
    .await
    .unwrap();
    let ((took, answer), cut) = slow;
    assert!(
        !answer.contains("200 OK"),
        "over the cap, the connection is closed without an answer: {answer}"
    );
    assert!(
        took < Duration::from_secs(1),
        "closed at once, not after the header time-out: {took:?}"
    );
    assert!(
        cut.iter().all(|c| *c),
        "every slow socket was cut off: {cut:?}"
    );
    // Then the listener answers again.
    eventually(
        "the listener to answer",
        Duration::from_secs(10),
        || async {
            reqwest::get(format!("{}/healthz", daemon.admin))
                .await
                .is_ok_and(|r| r.status().is_success())
        },
    )
    .await;
    let (code, _) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn upstream_values_are_url_encoded_in_links_and_banners_come_from_codes() {
    let sim = sim(20).await;
    let order_code = "20261208_X&done=pwned#";
    sim.with_merchant(|m| {
        let o = m
            .orders
            .iter_mut()
            .find(|o| !o.invoices.is_empty())
            .unwrap();
        o.order_code = order_code.into();
    });
    let erp = Recorder::start(Reply::status(400).body("unknown order")).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon_with(dir.path(), &sim, "", TOKEN, &erp.uri()).await;
    sim.with_merchant(|m| {
        let o = m
            .orders
            .iter_mut()
            .find(|o| o.order_code == order_code)
            .unwrap();
        o.invoices[0].printed ^= true;
    });
    eventually(
        "the order's event at the ERP",
        Duration::from_secs(20),
        || async {
            erp.got()
                .iter()
                .any(|g| String::from_utf8_lossy(&g.body).contains("X&done=pwned#"))
        },
    )
    .await;
    let (_, session) = sign_in(&daemon, TOKEN).await;
    let session = session.unwrap();
    let page = |path: String| {
        let (daemon, session) = (&daemon, &session);
        async move {
            let r = get_with(daemon, &path, &[("Cookie", session)]).await;
            r.text().await.unwrap()
        }
    };
    // Links carry the code encoded, so `&done=` stays part of the query.
    let encoded = "20261208_X%26done%3Dpwned%23";
    eventually("the dead letter", Duration::from_secs(10), || async {
        page("/dead-letters".into()).await.contains(encoded)
    })
    .await;
    let html = page("/dead-letters".into()).await;
    assert!(
        html.contains(&format!("href=\"/search?q={encoded}\"")),
        "{html}"
    );
    assert!(!html.contains("q=20261208_X&amp;done"), "{html}");
    // And so does the timeline's replay form, going back to the search.
    let html = page(format!("/search?q={encoded}")).await;
    assert!(
        html.contains(&format!("value=\"/search?q={encoded}\"")),
        "{html}"
    );
    // A banner is chosen by code; free text in `done` shows nothing.
    let html = page(
        "/search?done=Session%20expired:%20re-enter%20your%20token%20at%20https://evil.example"
            .into(),
    )
    .await;
    assert!(!html.contains("evil.example"), "{html}");
    assert!(!html.contains("class=\"done\""), "{html}");
    let html = page("/dead-letters?done=replayed&n=2".into()).await;
    assert!(html.contains("replayed 2 event(s)"), "{html}");
    let (code, _) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn two_hundred_half_headers_leave_the_console_answering_with_the_defaults() {
    let sim = sim(20).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon_with(dir.path(), &sim, "", TOKEN, "").await;
    let addr = daemon.admin.trim_start_matches("http://").to_owned();
    let slow: Vec<std::net::TcpStream> = tokio::task::spawn_blocking(move || {
        (0..200)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    .unwrap();
                s
            })
            .collect()
    })
    .await
    .unwrap();
    // Under `admin.max_connections` (256): the console still answers while
    // they hang, and each is cut off by the header time-out later.
    let r = get_with(&daemon, "/healthz", &[]).await;
    assert_eq!(r.status().as_u16(), 200);
    drop(slow);
    let (code, _) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
}
