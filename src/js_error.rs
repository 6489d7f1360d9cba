//! The one conversion from `rcluster_core::Error` to a JS error.

use napi::{Error, Status};

/// Turns a core error into a JS `Error` whose message names the failure. OS
/// errors keep their errno name (e.g. `EADDRINUSE`) as the code, the way
/// Node's system errors carry `code`.
pub fn to_js(err: rcluster_core::Error) -> Error {
    match &err {
        rcluster_core::Error::InvalidArgument(_) => Error::new(Status::InvalidArg, err.to_string()),
        _ => Error::new(Status::GenericFailure, err.to_string()),
    }
}
