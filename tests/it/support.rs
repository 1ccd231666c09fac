//! Shared test fixtures: a simulator on port 0 and configs that point at it.

use std::net::SocketAddr;

use poomgo_notifier::{
    config::Config,
    poomgo::PoomgoClient,
    sim::{SimOptions, Simulator},
};

pub const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

pub async fn simulator(orders: usize) -> Simulator {
    Simulator::start(
        LOOPBACK,
        SimOptions {
            orders,
            ..SimOptions::default()
        },
    )
    .await
    .expect("simulator starts")
}

/// A config for `base_url`, with fast retries so fault tests stay quick;
/// `extra` is appended to the `[poomgo]` table (or adds tables after it).
pub fn config(base_url: &str, extra: &str) -> Config {
    let mut poomgo = format!("[poomgo]\nbase_url = \"{base_url}\"\napi_key = \"${{TEST_KEY}}\"\n");
    for (key, fast) in [("retry_base", "\"10ms\""), ("retry_max", "\"100ms\"")] {
        if !extra.contains(key) {
            poomgo.push_str(&format!("{key} = {fast}\n"));
        }
    }
    let text = format!("{poomgo}{extra}\n");
    Config::parse(&text, "test.toml", std::env::temp_dir(), &|name| {
        (name == "TEST_KEY").then(|| "sim-key".to_owned())
    })
    .unwrap_or_else(|e| panic!("test config: {e}"))
}

pub fn client(config: &Config) -> PoomgoClient {
    let http =
        poomgo_notifier::http_client(config.poomgo.connect_timeout, config.poomgo.request_timeout)
            .unwrap();
    PoomgoClient::new(&config.poomgo, http).unwrap()
}
