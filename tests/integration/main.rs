//! One integration-test binary (one link step on 2 cores), one module per
//! capability. Everything runs over loopback against the project's own
//! testnet; each test uses its own 127.B.0.0/16 block.

mod acceptance;
mod address_safety;
mod attack;
mod browser;
mod changes;
mod cli;
mod crawl;
mod layers;
mod lookup;
mod politeness;
mod prosody;
mod prune;
mod regressions;
mod report;
mod sources;
mod store;
mod support;
mod survey;
mod truth;
mod web;
mod workers;
