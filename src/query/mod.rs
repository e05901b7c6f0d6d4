//! Read-side answers built on the store's read methods: time ranges and statistics.
//!
//! Aggregates come from counter buckets (O(buckets), never a scan of the log).

pub mod range;
pub mod stats;
pub mod timeseries;
pub mod tokens;
pub mod top;

pub use range::{HourRange, RangeError};
pub use stats::{Stats, StatsFilter};
pub use timeseries::{GroupBy, Interval, Series, SeriesRequest};
pub use tokens::TokenSummary;
pub use top::{TopDim, TopItem};
