//! rcluster's one error type. The bindings convert it to a JS error in one place.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// A system call failed; `op` is its name (`socketpair`, `bind`...), as
    /// Node's system errors carry it in `err.syscall`.
    Io { op: &'static str, source: io::Error },
    /// A peer sent bytes that are not a valid rcluster message.
    Protocol(String),
    /// The caller passed something unusable.
    InvalidArgument(String),
    /// The dispatcher thread has stopped.
    Stopped,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(op: &'static str, source: io::Error) -> Self {
        Error::Io { op, source }
    }

    /// The OS error number behind this error, if there is one. Node reports
    /// bind failures as negative errno values (libuv's convention), so the JS
    /// side can turn this into `EADDRINUSE`, `EACCES`, ... with `util.getSystemErrorName`.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether the other end of a channel is gone (`EPIPE`, `ECONNRESET`):
    /// there is nobody left to tell anything.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Error::Io { source, .. } if crate::sys::is_disconnected(source))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, source } => write!(f, "{op}: {source}"),
            Error::Protocol(msg) => write!(f, "rcluster channel protocol error: {msg}"),
            Error::InvalidArgument(msg) => write!(f, "{msg}"),
            Error::Stopped => write!(f, "the rcluster dispatcher has stopped"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
