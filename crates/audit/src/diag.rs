//! The IPv6-only flag of IPv6 sockets, from the kernel's socket-diagnostics netlink
//! interface (the one `ss` uses): /proc/net/tcp6 does not show it, and whether `[::]:port`
//! also takes IPv4 depends on it.

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET6, IPPROTO_TCP, IPPROTO_UDP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags, nlas::Nla},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};
use std::collections::HashMap;
use std::io;
use std::time::Duration;

/// Most answers a dump may take, so a misbehaving kernel interface cannot keep us reading.
const MAX_MESSAGES: usize = 1_000_000;
/// How long one read of the dump may wait.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Socket inode → IPv6-only, for every IPv6 TCP and UDP socket of the calling thread's
/// network namespace.
pub(crate) fn v6only_by_inode() -> io::Result<HashMap<u64, bool>> {
    let mut flags = HashMap::new();
    for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
        dump(protocol, &mut flags)?;
    }
    Ok(flags)
}

fn dump(protocol: u8, flags: &mut HashMap<u64, bool>) -> io::Result<()> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(READ_TIMEOUT.as_secs() as _, 0),
    )
    .map_err(io::Error::from)?;

    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family: AF_INET6,
            protocol,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id: SocketId::new_v6(),
        })
        .into(),
    );
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.serialize(&mut buf[..]);
    socket.send(&buf, 0)?;

    let mut receive = vec![0u8; 64 * 1024];
    let mut messages = 0usize;
    loop {
        let size = socket.recv(&mut &mut receive[..], 0)?;
        if size == 0 {
            return Ok(());
        }
        let mut offset = 0;
        while offset < size {
            let bytes = &receive[offset..size];
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(bytes).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag answer: {e}"))
            })?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    let v6only = response.nlas.iter().find_map(|nla| match nla {
                        Nla::SkV6Only(on) => Some(*on),
                        _ => None,
                    });
                    if let Some(on) = v6only {
                        flags.insert(u64::from(response.header.inode), on);
                    }
                }
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(error) => {
                    return Err(io::Error::other(format!(
                        "sock_diag refused the dump: {error:?}"
                    )));
                }
                _ => {}
            }
            messages += 1;
            if messages > MAX_MESSAGES {
                return Err(io::Error::other("sock_diag dump did not end"));
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}
