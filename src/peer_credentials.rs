//! `peerCredentials(fd)`: who is at the other end of a unix socket, for the
//! `rcluster` command's control socket (lib/cli/control.js), which must not
//! take orders from, or print the answers of, another local user. Node has
//! no API for `SO_PEERCRED`.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rcluster_core::sys;

#[napi(object)]
pub struct PeerCredentials {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// The peer of the connected unix socket `fd` (a libuv handle's descriptor,
/// read on the JS thread while its socket is open). An fd that is not one is
/// thrown as Node's system errors are (`err.code` `EBADF`, `ENOTSOCK`...).
#[napi]
pub fn peer_credentials(env: Env, fd: i32) -> Result<PeerCredentials> {
    match sys::peer_credentials(fd) {
        Ok((pid, uid, gid)) => Ok(PeerCredentials { pid, uid, gid }),
        Err(err) => Err(crate::js_error::to_js(&env, rcluster_core::Error::io("getsockopt", err))),
    }
}
