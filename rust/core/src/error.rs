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

/// Check a stack operation: `input` is `(N, …in_volume)` and `output` is `(N, …out_volume)`.
pub fn ensure_stack(
    what: &str,
    input: &[usize],
    output: &[usize],
    in_volume: [usize; 3],
    out_volume: [usize; 3],
) -> Result<()> {
    ensure(
        input.len() == 4
            && output.len() == 4
            && input[0] == output[0]
            && input[1..] == in_volume
            && output[1..] == out_volume,
        || {
            format!(
                "{what}: expected (N, {in_volume:?}) in and (N, {out_volume:?}) out, \
                 got {input:?} and {output:?}"
            )
        },
    )
}
