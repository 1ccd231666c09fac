//! Integration tests: one binary (compiled once), one module per capability.
//! Everything talks to loopback only: the simulator, wiremock, test receivers.

mod browser;
mod commands;
mod console;
mod crash;
mod daemon;
mod delivery;
mod faults;
mod hardening;
mod known_rows;
mod merchants;
mod messages;
mod plan;
mod poll;
mod process;
mod properties;
mod scan;
mod security;
mod support;
mod upstream;
