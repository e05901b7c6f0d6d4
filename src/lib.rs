//! gatewatch: a self-hosted security-event analytics and abuse-decision appliance.
//!
//! Crate map (see ARCHITECTURE.md for the invariants):
//! - [`model`]: the pure domain — events, outcomes, the taxonomy, tenants, roles, time.
//! - [`ingest`]: raw request bodies → validated, sanitised [`model::Event`]s (pure).
//! - [`store`]: the only module that touches redb — tables, codec, group-commit writer.
//! - [`query`]: read-side answers (stats, event lists) built on the store's read methods.
//! - [`app`]: every use case, written once, called by `http`, `cli` and `jobs`.
//! - [`http`]: the only module that knows hyper and the wire format.
//! - [`web`]: the dashboard's pages (askama templates, embedded assets), served by `http`.
//! - [`jobs`]: background loops that stop on shutdown.
//! - [`demo`]: the `gatewatch demo` traffic generator and set-up.
//! - [`config`], [`cli`]: configuration and the command line.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod model;
pub mod query;
pub mod store;
pub mod web;
