//! `SharedMemory`: this process's mapping of the cluster's shared state
//! (`rcluster_core::shared_memory`). Every method is a few atomic operations
//! on the mapping: no message, no thread hop.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rcluster_core::shared_memory::{self, Region, SharedError};

use crate::js_error::JsError;

fn to_js(env: &Env, err: SharedError) -> napi::Error {
    let message = err.to_string();
    match err {
        SharedError::BadName(_) | SharedError::ValueTooLarge(_) => JsError::out_of_range(message),
        SharedError::CountersFull | SharedError::TableFull => JsError::error("ERR_RCLUSTER_SHARED_FULL", message),
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
}

/// The sizes of the region, fixed at build time.
#[napi]
pub fn shared_limits() -> SharedLimits {
    SharedLimits {
        counters: shared_memory::COUNTER_SLOTS as u32,
        name_max: shared_memory::NAME_MAX as u32,
        table_keys: shared_memory::TABLE_SLOTS as u32,
        value_max: shared_memory::VALUE_MAX as u32,
    }
}

#[napi(object)]
pub struct CounterEntry {
    pub name: String,
    pub value: i64,
}

#[napi]
pub struct SharedMemory {
    region: Region,
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
                Ok(SharedMemory { region, fd: Some(fd) })
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
                Ok(SharedMemory { region, fd: None })
            }
        }
    }

    /// The region's fd in the primary (to pass as a stdio slot), else -1.
    #[napi(getter)]
    pub fn fd(&self) -> i32 {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// The slot of counter `name`, claimed if new.
    #[napi]
    pub fn counter(&self, env: Env, name: String) -> Result<u32> {
        self.region.counter(&name).map(|slot| slot as u32).map_err(|e| to_js(&env, e))
    }

    #[napi]
    pub fn add(&self, slot: u32, n: i64) -> i64 {
        self.region.add(slot as usize, n)
    }

    #[napi]
    pub fn get(&self, slot: u32) -> i64 {
        self.region.get(slot as usize)
    }

    #[napi]
    pub fn compare_and_set(&self, slot: u32, expected: i64, value: i64) -> bool {
        self.region.compare_and_set(slot as usize, expected, value)
    }

    /// Every counter claimed so far, with its value.
    #[napi]
    pub fn counters(&self) -> Vec<CounterEntry> {
        self.region.counters().into_iter().map(|(name, value)| CounterEntry { name, value }).collect()
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
