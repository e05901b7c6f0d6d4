//! Background jobs.
