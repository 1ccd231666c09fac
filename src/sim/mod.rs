//! A loopback simulator of the Poomgo OMS orders endpoint.
//!
//! It serves `POST /open-api/oms/orders` as documented (raw-key
//! `Authorization`, every filter, `page`/`pageSize` with the documented
//! defaults, 400 above 500 rows, `total` as a string, newest first) over a
//! generated merchant ([`merchant`]) whose invoices move along their life
//! cycle when time advances: on a `--tick`, or on demand through
//! `POST /_sim/advance` so tests are deterministic. Faults ([`faults`]) make
//! chosen pages fail, slow down, or answer garbage.
//!
//! Control endpoints (loopback only, no key):
//! - `POST /_sim/advance` with an optional JSON body `{"steps":1,"fraction":0.25,"new_orders":3}`
//! - `POST /_sim/faults` with a [`FaultRule`] as JSON; `DELETE /_sim/faults` clears them
//! - `GET /_sim/stats`: orders, invoices and requests served
//! - `POST /_sim/key` with `{"api_key": "..."}`: revoke the key and accept another
//!
//! The same server runs in-process for tests ([`Simulator::start`] on port 0).

pub mod faults;
pub mod merchant;
mod server;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
pub use faults::{Fault, FaultRule};
pub use merchant::{AdvanceOptions, AdvanceReport, Merchant};

use crate::poomgo::Invoice;
use crate::shutdown::Shutdown;

/// How to build and run a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub orders: usize,
    pub seed: u64,
    /// Orders are spread over this many days before the start.
    pub days: u32,
    pub api_key: String,
    /// Advance one step this often; frozen when `None`.
    pub tick: Option<Duration>,
    /// How each tick advances.
    pub advance: AdvanceOptions,
    pub faults: Vec<FaultRule>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            orders: 300,
            seed: 2026,
            days: 10,
            api_key: "sim-key".into(),
            tick: None,
            advance: AdvanceOptions::default(),
            faults: Vec::new(),
        }
    }
}

/// Request times kept by the simulator.
const REQUEST_TIMES: usize = 10_000;

/// State shared by the HTTP handlers and the handle.
struct Shared {
    merchant: Mutex<Merchant>,
    faults: Mutex<faults::Faults>,
    api_key: Mutex<String>,
    requests: std::sync::atomic::AtomicU64,
    /// When the latest order-page requests arrived (at most
    /// [`REQUEST_TIMES`]), for tests that check gaps, not wall time.
    request_times: Mutex<std::collections::VecDeque<std::time::Instant>>,
    /// Order requests being answered right now, and the most ever at once.
    in_flight: std::sync::atomic::AtomicU64,
    max_in_flight: std::sync::atomic::AtomicU64,
    /// While set, `--tick` does not move time.
    paused: std::sync::atomic::AtomicBool,
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    /// Generates the merchant and starts serving on `listen` (port 0 picks one).
    pub async fn start(listen: SocketAddr, options: SimOptions) -> std::io::Result<Simulator> {
        let merchant = Merchant::generate(options.orders, options.seed, options.days, Utc::now());
        let mut faults = faults::Faults::default();
        for rule in options.faults {
            faults.add(rule);
        }
        let shared = Arc::new(Shared {
            merchant: Mutex::new(merchant),
            faults: Mutex::new(faults),
            api_key: Mutex::new(options.api_key),
            requests: Default::default(),
            request_times: Default::default(),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
            paused: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let stop = Shutdown::new();
        let app = server::router(shared.clone());
        let mut stopped = stop.clone();
        let serve =
            axum::serve(listener, app).with_graceful_shutdown(async move { stopped.wait().await });
        let ticker = options.tick.map(|every| {
            let shared = shared.clone();
            let advance = AdvanceOptions { steps: 1, ..options.advance };
            let mut stopped = stop.clone();
            async move {
                let mut interval = tokio::time::interval(every);
                interval.tick().await;
                loop {
                    tokio::select! {
                        _ = interval.tick() => {
                            if shared.paused.load(std::sync::atomic::Ordering::SeqCst) {
                                continue;
                            }
                            let report = shared.merchant.lock().expect("sim lock").advance(advance, Utc::now());
                            tracing::debug!(changed = report.changed, new_orders = report.new_orders, "sim tick");
                        }
                        _ = stopped.wait() => break,
                    }
                }
            }
        });
        let task = tokio::spawn(async move {
            if let Some(ticker) = ticker {
                tokio::spawn(ticker);
            }
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "simulator server stopped");
            }
        });
        Ok(Simulator {
            addr,
            shared,
            stop,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What `poomgo.base_url` should be to talk to this simulator.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn api_key(&self) -> String {
        self.shared.api_key.lock().expect("sim lock").clone()
    }

    /// Changes the key the simulator accepts (the old one is revoked).
    pub fn set_api_key(&self, key: &str) {
        *self.shared.api_key.lock().expect("sim lock") = key.to_owned();
    }

    /// Advances simulated time now.
    pub fn advance(&self, options: AdvanceOptions) -> AdvanceReport {
        self.shared
            .merchant
            .lock()
            .expect("sim lock")
            .advance(options, Utc::now())
    }

    pub fn add_fault(&self, rule: FaultRule) {
        self.shared.faults.lock().expect("sim lock").add(rule);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("sim lock").clear();
    }

    /// Every invoice of the merchant and whether it is canceled.
    pub fn invoices(&self) -> Vec<(Invoice, bool)> {
        self.shared
            .merchant
            .lock()
            .expect("sim lock")
            .all_invoices()
    }

    /// Runs `f` on the merchant (tests read or adjust the truth with it).
    pub fn with_merchant<R>(&self, f: impl FnOnce(&mut Merchant) -> R) -> R {
        f(&mut self.shared.merchant.lock().expect("sim lock"))
    }

    /// When the latest order-page requests arrived, oldest first (at most
    /// the last 10,000).
    pub fn request_times(&self) -> Vec<std::time::Instant> {
        self.shared
            .request_times
            .lock()
            .expect("sim lock")
            .iter()
            .copied()
            .collect()
    }

    /// Order-page requests served so far (control endpoints not counted).
    pub fn requests(&self) -> u64 {
        self.shared
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops (or restarts) the ticking of simulated time.
    pub fn pause_time(&self, paused: bool) {
        self.shared
            .paused
            .store(paused, std::sync::atomic::Ordering::SeqCst);
    }

    /// Order requests being answered right now.
    pub fn in_flight(&self) -> u64 {
        self.shared
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most order requests that were ever being answered at once.
    pub fn max_in_flight(&self) -> u64 {
        self.shared
            .max_in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) {
        self.stop.trigger();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}
