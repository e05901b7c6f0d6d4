//! HTTP integration tests of gatewatch: each test starts a real server over its own
//! temporary store on a loopback port and speaks HTTP/1.1 to it (see `support`).

mod analytics;
mod browser;
mod crash;
mod dashboard;
mod filters;
mod ingest;
mod ops;
mod props;
mod support;
mod tenants;
mod webdriver;
