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
//! It can serve many merchants at once (`--merchants N`), as the real API
//! serves many accounts: each has its own key (the first `api_key`, the
//! others `api_key-2`, `api_key-3`, …), its own generated orders (seed + its
//! index), its own faults, and its own request count. Their order and
//! invoice ids overlap on purpose: the notifier must keep merchants apart by
//! itself, whatever ids the upstream hands out.
//!
//! Control endpoints (loopback only, no key; `?merchant=N`, from 1, picks a
//! merchant, the first by default):
//! - `POST /_sim/advance` with an optional JSON body `{"steps":1,"fraction":0.25,"new_orders":3}`
//!   (without `?merchant`: every merchant)
//! - `POST /_sim/faults` with a [`FaultRule`] as JSON; `DELETE /_sim/faults` clears them
//! - `GET /_sim/stats`: orders, invoices and requests served, in all and per merchant
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
    /// Merchants served, each with its own key and orders (see the module
    /// docs); at least 1.
    pub merchants: usize,
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
            merchants: 1,
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
    merchants: Vec<Slot>,
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

/// One merchant the simulator serves.
struct Slot {
    merchant: Mutex<Merchant>,
    faults: Mutex<faults::Faults>,
    api_key: Mutex<String>,
    requests: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// The merchant whose key `key` is.
    fn by_key(&self, key: &str) -> Option<&Slot> {
        self.merchants
            .iter()
            .find(|m| *m.api_key.lock().expect("sim lock") == key)
    }
}

/// The key of merchant `index` (from 0): `base`, then `base-2`, `base-3`, ….
pub fn merchant_key(base: &str, index: usize) -> String {
    if index == 0 {
        base.to_owned()
    } else {
        format!("{base}-{}", index + 1)
    }
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
        let now = Utc::now();
        let merchants = (0..options.merchants.max(1))
            .map(|i| {
                let mut faults = faults::Faults::default();
                for rule in &options.faults {
                    faults.add(rule.clone());
                }
                Slot {
                    merchant: Mutex::new(Merchant::generate(
                        options.orders,
                        options.seed.wrapping_add(i as u64),
                        options.days,
                        now,
                    )),
                    faults: Mutex::new(faults),
                    api_key: Mutex::new(merchant_key(&options.api_key, i)),
                    requests: Default::default(),
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            merchants,
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
                            for slot in &shared.merchants {
                                let report = slot.merchant.lock().expect("sim lock").advance(advance, Utc::now());
                                tracing::debug!(changed = report.changed, new_orders = report.new_orders, "sim tick");
                            }
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

    /// How many merchants it serves.
    pub fn merchants(&self) -> usize {
        self.shared.merchants.len()
    }

    /// Merchant `index` (from 0); the methods below without one act on the
    /// first.
    ///
    /// # Panics
    /// When `index` is not below [`merchants`](Self::merchants) (a test's
    /// mistake).
    pub fn merchant(&self, index: usize) -> SimMerchant<'_> {
        SimMerchant(&self.shared.merchants[index])
    }

    pub fn api_key(&self) -> String {
        self.merchant(0).api_key()
    }

    /// Changes the key the simulator accepts (the old one is revoked).
    pub fn set_api_key(&self, key: &str) {
        self.merchant(0).set_api_key(key);
    }

    /// Advances simulated time now.
    pub fn advance(&self, options: AdvanceOptions) -> AdvanceReport {
        self.merchant(0).advance(options)
    }

    pub fn add_fault(&self, rule: FaultRule) {
        self.merchant(0).add_fault(rule);
    }

    pub fn clear_faults(&self) {
        self.merchant(0).clear_faults();
    }

    /// Every invoice of the merchant and whether it is canceled.
    pub fn invoices(&self) -> Vec<(Invoice, bool)> {
        self.merchant(0).invoices()
    }

    /// Runs `f` on the merchant (tests read or adjust the truth with it).
    pub fn with_merchant<R>(&self, f: impl FnOnce(&mut Merchant) -> R) -> R {
        self.merchant(0).with_merchant(f)
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

/// One merchant of a running simulator.
pub struct SimMerchant<'a>(&'a Slot);

impl SimMerchant<'_> {
    pub fn api_key(&self) -> String {
        self.0.api_key.lock().expect("sim lock").clone()
    }

    /// Changes the key this merchant accepts (the old one is revoked).
    pub fn set_api_key(&self, key: &str) {
        *self.0.api_key.lock().expect("sim lock") = key.to_owned();
    }

    /// Advances this merchant's simulated time now.
    pub fn advance(&self, options: AdvanceOptions) -> AdvanceReport {
        self.0
            .merchant
            .lock()
            .expect("sim lock")
            .advance(options, Utc::now())
    }

    pub fn add_fault(&self, rule: FaultRule) {
        self.0.faults.lock().expect("sim lock").add(rule);
    }

    pub fn clear_faults(&self) {
        self.0.faults.lock().expect("sim lock").clear();
    }

    /// Every invoice of this merchant and whether it is canceled.
    pub fn invoices(&self) -> Vec<(Invoice, bool)> {
        self.0.merchant.lock().expect("sim lock").all_invoices()
    }

    /// Runs `f` on this merchant.
    pub fn with_merchant<R>(&self, f: impl FnOnce(&mut Merchant) -> R) -> R {
        f(&mut self.0.merchant.lock().expect("sim lock"))
    }

    /// Order-page requests this merchant's key made (a rejected key's too
    /// are not counted: they match no merchant).
    pub fn requests(&self) -> u64 {
        self.0.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}
