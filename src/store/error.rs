//! The store's error type.

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb or the file system failed; details are for the log, not for clients.
    #[error("storage failure: {0}")]
    Storage(String),
    /// A stored record does not decode.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The writer is stopped, overloaded or refusing writes after an I/O error.
    #[error("the store is not accepting writes right now")]
    Unavailable,
    /// The writer's queue stayed full for the whole wait.
    #[error("the write queue is full")]
    Busy,
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the store was written by a newer gatewatch (format {found}, this build reads up to {supported})")]
    TooNew { found: u64, supported: u64 },
}

macro_rules! storage_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(e.to_string())
            }
        }
    )*};
}

storage_error_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);
