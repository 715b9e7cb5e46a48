//! The core's error type: a message for the caller, who adds the file or parameter name.

use std::fmt;

/// Invalid input to a core function (shapes, sizes, parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Result of a core function.
pub type Result<T> = std::result::Result<T, Error>;

/// Fail with `msg` unless `cond` holds.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error(msg()))
    }
}
