//! The pure domain: events, outcomes, the event taxonomy, tenants, roles and time.
//!
//! Nothing here does I/O or reads a clock; callers pass `now` in.

mod event;
pub mod sketch;
mod tenant;
pub mod time;
mod token;

pub use event::{Event, EventType, Outcome};
pub use tenant::{KeyKind, Role, TenantSlug};
pub use token::TokenState;
