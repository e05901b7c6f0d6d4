//! The use cases' error type: what went wrong, in terms the edges can map to a status.

use crate::ingest::{IngestError, Problem};
use crate::store::StoreError;

/// Why a use case refused or failed. `http` maps each variant to a status and error code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// Bad input: nothing was changed.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<String>,
        details: Vec<Problem>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Not ready, overloaded or shutting down; try again after `retry_after_s`.
    #[error("{message}")]
    Unavailable { message: String, retry_after_s: u32 },
    /// Too many attempts (logins); try again after `retry_after_s`.
    #[error("{message}")]
    Throttled { message: String, retry_after_s: u32 },
    /// A bug or a storage failure; the details are logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// A 400 about one field.
    pub fn field(code: &'static str, field: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            code,
            message: message.into(),
            field: Some(field.to_owned()),
            details: Vec::new(),
        }
    }

    /// A 400 not tied to one field.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            code,
            message: message.into(),
            field: None,
            details: Vec::new(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy => AppError::Unavailable {
                message: "the write queue is full; retry shortly".into(),
                retry_after_s: 1,
            },
            StoreError::Unavailable => AppError::Unavailable {
                message: "the store is not accepting writes".into(),
                retry_after_s: 5,
            },
            StoreError::Conflict(what) => AppError::Conflict {
                code: "conflict",
                message: format!("{what} already exists"),
            },
            StoreError::NotFound(what) => AppError::NotFound(format!("{what} not found")),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Malformed(message) => AppError::invalid("invalid_json", message),
            IngestError::Empty => AppError::invalid("empty_batch", "the request carries no event"),
            IngestError::TooMany(_) => AppError::TooLarge(e.to_string()),
            IngestError::Invalid(problems) => {
                let first = problems.first();
                let message = match first {
                    Some(p) if problems.len() == 1 => match &p.field {
                        Some(f) => format!("event {}: `{f}` {}", p.index, p.message),
                        None => format!("event {}: {}", p.index, p.message),
                    },
                    _ => format!(
                        "{} problems in the events; nothing was stored",
                        problems.len()
                    ),
                };
                AppError::Invalid {
                    code: "invalid_field",
                    message,
                    field: first.and_then(|p| p.field.clone()),
                    details: problems,
                }
            }
        }
    }
}
