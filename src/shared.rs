//! `SharedMemory`: this process's mapping of the cluster's shared state
//! (`rcluster_core::shared`). Every method is a few atomic operations
//! on the mapping: no message, no thread hop.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use rcluster_core::shared::{self, Region, SharedError};

use crate::js_error::{check, JsError};

fn to_js(env: &Env, err: SharedError) -> napi::Error {
    let message = err.to_string();
    match err {
        SharedError::BadName(_) | SharedError::ValueTooLarge(_) => JsError::out_of_range(message),
        SharedError::CountersFull | SharedError::TableFull => JsError::error("ERR_RCLUSTER_SHARED_FULL", message),
        SharedError::LockTimeout { .. } => JsError::error("ERR_RCLUSTER_SHARED_LOCK_TIMEOUT", message),
        SharedError::Busy { .. } => JsError::error("ERR_RCLUSTER_SHARED_BUSY", message),
    }
    .into_napi(env)
}

fn io_to_js(env: &Env, op: &'static str, err: std::io::Error) -> napi::Error {
    crate::js_error::to_js(env, rcluster_core::Error::io(op, err))
}

#[napi(object)]
pub struct SharedLimits {
    pub counters: u32,
    pub name_max: u32,
    pub table_keys: u32,
    pub value_max: u32,
    /// `counterBuffer()` as a BigInt64Array: elements per slot, and the value's element in it.
    pub counter_stride: u32,
    pub counter_value_index: u32,
    /// The element holding the other machines' parts (see `bus.redis`).
    pub counter_remote_index: u32,
}

/// The sizes of the region, fixed at build time.
#[napi]
pub fn shared_limits() -> SharedLimits {
    SharedLimits {
        counters: shared::COUNTER_SLOTS as u32,
        name_max: shared::NAME_MAX as u32,
        table_keys: shared::TABLE_SLOTS as u32,
        value_max: shared::VALUE_MAX as u32,
        counter_stride: (shared::COUNTER_SLOT_LEN / 8) as u32,
        counter_value_index: (shared::COUNTER_VALUE_AT / 8) as u32,
        counter_remote_index: (shared::COUNTER_REMOTE_AT / 8) as u32,
    }
}

#[napi(object)]
pub struct CounterEntry {
    /// Its slot, as `counter(name)` would return it.
    pub slot: u32,
    pub name: String,
    pub value: i64,
}

#[napi]
pub struct SharedMemory {
    region: Arc<Region>,
    /// The primary's fd of the region, for passing to the processes it forks.
    fd: Option<OwnedFd>,
}

#[napi]
impl SharedMemory {
    /// Without `fd`, creates the region (the primary). With `fd`, maps the
    /// region the primary passed and closes `fd`, so processes this one
    /// spawns do not inherit it.
    #[napi(constructor)]
    pub fn new(env: Env, fd: Option<i32>) -> Result<Self> {
        match fd {
            None => {
                let (region, fd) = Region::create().map_err(|e| io_to_js(&env, "memfd_create", e))?;
                Ok(SharedMemory { region: Arc::new(region), fd: Some(fd) })
            }
            Some(fd) if fd < 0 => Err(JsError::out_of_range(format!(
                "The value of \"fd\" is out of range. It must be >= 0. Received {fd}"
            ))
            .into_napi(&env)),
            Some(fd) => {
                // SAFETY: the primary put the region in this stdio slot for
                // this process alone; it is ours from here.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let region = Region::open(fd).map_err(|e| io_to_js(&env, "mmap", e))?;
                Ok(SharedMemory { region: Arc::new(region), fd: None })
            }
        }
    }

    /// The region's fd in the primary (to pass as a stdio slot), else -1.
    #[napi(getter)]
    pub fn fd(&self) -> i32 {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// The counters' slots as an ArrayBuffer over the mapping itself, for
    /// `Atomics` on a `BigInt64Array`: an add is then one locked instruction
    /// in JIT-compiled code, not a native call. Slot `i`'s value is element
    /// `i * counterStride + counterValueIndex`. The buffer keeps the mapping alive.
    #[napi(ts_return_type = "ArrayBuffer")]
    pub fn counter_buffer(&self, env: Env) -> Result<Unknown<'_>> {
        let (data, len) = self.region.counter_bytes();
        let hold = Box::into_raw(Box::new(Arc::clone(&self.region)));
        unsafe extern "C" fn release(_env: sys::napi_env, _data: *mut std::ffi::c_void, hint: *mut std::ffi::c_void) {
            // SAFETY: `hint` is the Box made above, released once, here.
            drop(unsafe { Box::from_raw(hint.cast::<Arc<Region>>()) });
        }
        let mut value = ptr::null_mut();
        // SAFETY: `data` is `len` bytes of a mapping that `hold` keeps alive
        // until the buffer is collected.
        let created = unsafe {
            check(sys::napi_create_external_arraybuffer(env.raw(), data.cast(), len, Some(release), hold.cast(), &mut value))
        };
        if let Err(err) = created {
            // SAFETY: not handed to the buffer, so still ours.
            drop(unsafe { Box::from_raw(hold) });
            return Err(err);
        }
        // SAFETY: just created in this env.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
    }

    /// The slot of counter `name`, claimed if new.
    #[napi]
    pub fn counter(&self, env: Env, name: String) -> Result<u32> {
        self.region.counter(&name).map(|slot| slot as u32).map_err(|e| to_js(&env, e))
    }

    /// Every counter claimed and named so far, with its slot and value.
    /// Slots another process corrupted are left out (and counted as refused
    /// `sharedMemory` input).
    #[napi]
    pub fn counters(&self) -> Vec<CounterEntry> {
        self.region
            .counters()
            .into_iter()
            .map(|(slot, name, value)| CounterEntry { slot: slot as u32, name, value })
            .collect()
    }

    #[napi]
    pub fn table_get(&self, env: Env, key: String) -> Result<Option<Buffer>> {
        Ok(self.region.table_get(&key).map_err(|e| to_js(&env, e))?.map(Buffer::from))
    }

    /// Sets `key` to `value`; `null` deletes it.
    #[napi]
    pub fn table_set(&self, env: Env, key: String, value: Option<Buffer>) -> Result<()> {
        self.region.table_set(&key, value.as_deref()).map_err(|e| to_js(&env, e))
    }

    #[napi]
    pub fn table_keys(&self) -> Vec<String> {
        self.region.table_keys()
    }
}
