//! The one conversion from `rcluster_core::Error` to a JS error.
//!
//! An OS error reaches JS as Node's own system errors do (libuv's
//! convention): `err.code` is the errno name (`EMFILE`), `err.errno` the
//! negative errno, `err.syscall` the call, and the message `socketpair EMFILE`.
//! Anything else is thrown as itself, with its own message and a code of its
//! own (`ERR_INVALID_ARG_VALUE` for an unusable argument), never as an errno.

use std::ffi::{c_char, CStr};
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::uv;

/// Which JS error constructor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Error,
    TypeError,
    RangeError,
}

/// A JS error about to be thrown.
#[derive(Debug)]
pub struct JsError {
    kind: Kind,
    code: String,
    message: String,
    /// Negative, as libuv and Node report it.
    errno: Option<i32>,
    syscall: Option<&'static str>,
}

/// libuv's name for an errno (`EADDRINUSE`...), which is what Node's
/// `util.getSystemErrorName` gives.
pub fn errno_name(errno: i32) -> String {
    // SAFETY: uv_err_name takes any int and returns a static NUL-terminated
    // string (for unknown codes, a leaked one: still valid for ever).
    let name = unsafe { CStr::from_ptr(uv::uv_err_name(-errno.abs())) };
    name.to_string_lossy().into_owned()
}

impl JsError {
    pub fn from_core(err: &rcluster_core::Error) -> Self {
        use rcluster_core::Error as E;
        match err {
            E::Io { op, source } => match source.raw_os_error() {
                Some(errno) => {
                    let code = errno_name(errno);
                    JsError {
                        kind: Kind::Error,
                        message: format!("{op} {code}"),
                        code,
                        errno: Some(-errno),
                        syscall: Some(op),
                    }
                }
                None => JsError::error("ERR_RCLUSTER_IO", err.to_string()),
            },
            E::InvalidArgument(message) => JsError::invalid_arg_value(message.clone()),
            E::Protocol(_) => JsError::error("ERR_RCLUSTER_PROTOCOL", err.to_string()),
            E::Stopped => JsError::error("ERR_RCLUSTER_STOPPED", err.to_string()),
        }
    }

    pub fn error(code: &str, message: String) -> Self {
        JsError { kind: Kind::Error, code: code.to_string(), message, errno: None, syscall: None }
    }

    /// Node's `ERR_INVALID_ARG_VALUE`: an argument of the right type that
    /// cannot be used.
    pub fn invalid_arg_value(message: String) -> Self {
        JsError { kind: Kind::TypeError, code: "ERR_INVALID_ARG_VALUE".into(), message, errno: None, syscall: None }
    }

    /// Node's `ERR_INVALID_ARG_TYPE`.
    pub fn invalid_arg_type(message: String) -> Self {
        JsError { kind: Kind::TypeError, code: "ERR_INVALID_ARG_TYPE".into(), message, errno: None, syscall: None }
    }

    /// Node's `ERR_OUT_OF_RANGE`.
    pub fn out_of_range(message: String) -> Self {
        JsError { kind: Kind::RangeError, code: "ERR_OUT_OF_RANGE".into(), message, errno: None, syscall: None }
    }

    /// The error object, ready to be thrown by returning it as `Err`.
    pub fn into_napi(self, env: &Env) -> Error {
        // SAFETY: `env` is the live env of the call being answered.
        match unsafe { self.create(env.raw()) } {
            // SAFETY: `value` was just created in `env`.
            Ok(value) => Error::from(unsafe { Unknown::from_raw_unchecked(env.raw(), value) }),
            // Could not even build the error (out of memory, a pending
            // exception): at least the message gets through.
            Err(_) => Error::new(Status::GenericFailure, self.message),
        }
    }

    /// # Safety
    /// `env` must be the live env of the current call, on its JS thread.
    unsafe fn create(&self, env: sys::napi_env) -> Result<sys::napi_value> {
        let code = string(env, &self.code)?;
        let message = string(env, &self.message)?;
        let mut error = ptr::null_mut();
        check(match self.kind {
            Kind::Error => sys::napi_create_error(env, code, message, &mut error),
            Kind::TypeError => sys::napi_create_type_error(env, code, message, &mut error),
            Kind::RangeError => sys::napi_create_range_error(env, code, message, &mut error),
        })?;
        if let Some(errno) = self.errno {
            let mut value = ptr::null_mut();
            check(sys::napi_create_int32(env, errno, &mut value))?;
            check(sys::napi_set_named_property(env, error, c"errno".as_ptr(), value))?;
        }
        if let Some(syscall) = self.syscall {
            let value = string(env, syscall)?;
            check(sys::napi_set_named_property(env, error, c"syscall".as_ptr(), value))?;
        }
        Ok(error)
    }
}

/// # Safety
/// `env` must be a live env on its JS thread.
unsafe fn string(env: sys::napi_env, text: &str) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    check(sys::napi_create_string_utf8(env, text.as_ptr() as *const c_char, text.len() as _, &mut value))?;
    Ok(value)
}

/// A napi call's status as a `Result`.
pub fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), format!("napi call failed with status {status}")))
    }
}

/// Converts a core error for throwing from a binding method.
pub fn to_js(env: &Env, err: rcluster_core::Error) -> Error {
    JsError::from_core(&err).into_napi(env)
}
