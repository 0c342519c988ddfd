//! TCP listeners inside a lab namespace.
//!
//! A dedicated OS thread enters the namespace with `setns(CLONE_NEWNET)` and
//! runs a current-thread tokio runtime; every socket created on that thread
//! belongs to the namespace. One dual-stack listener per open port answers on
//! both the IPv4 and the IPv6 address.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::LabError;

/// Listen backlog of every lab listener.
const BACKLOG: i32 = 4096;
/// How long start() waits for the listener thread to report.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a greeting connection may linger after the greeting was sent.
const GREETING_LINGER: Duration = Duration::from_secs(2);

/// Handle on the listener thread; [`ListenerHandle::stop`] ends it.
#[derive(Debug)]
pub(crate) struct ListenerHandle {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ListenerHandle {
    /// Signals shutdown and joins the thread. Idempotent; never panics.
    pub(crate) fn stop(&mut self) {
        // Dropping the sender wakes the receiver with an error: that is the signal.
        drop(self.shutdown.take());
        if let Some(thread) = self.thread.take() {
            // A panicked listener thread has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the listener thread in `namespace` and waits until every port listens.
pub(crate) fn spawn(
    namespace: &str,
    ports: Vec<u16>,
    greetings: BTreeMap<u16, Vec<u8>>,
) -> Result<ListenerHandle, LabError> {
    let ns_path = PathBuf::from("/var/run/netns").join(namespace);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let ns_name = namespace.to_owned();
    let greetings: BTreeMap<u16, Arc<[u8]>> = greetings
        .into_iter()
        .map(|(port, bytes)| (port, Arc::from(bytes)))
        .collect();
    let thread = std::thread::Builder::new()
        .name(format!("{namespace}-listen"))
        .spawn(move || listener_thread(ns_path, ns_name, ports, greetings, ready_tx, shutdown_rx))
        .map_err(|source| LabError::Io {
            context: "spawning the listener thread".to_owned(),
            source,
        })?;
    let mut handle = ListenerHandle {
        shutdown: Some(shutdown_tx),
        thread: Some(thread),
    };
    match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(err)) => {
            handle.stop();
            Err(err)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            handle.stop();
            Err(LabError::Listener {
                namespace: namespace.to_owned(),
                reason: "listener thread exited before reporting (panic?)".to_owned(),
            })
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // Do not join a thread that may be stuck; detach it instead.
            drop(handle.shutdown.take());
            drop(handle.thread.take());
            Err(LabError::Listener {
                namespace: namespace.to_owned(),
                reason: format!("listeners not ready within {READY_TIMEOUT:?}"),
            })
        }
    }
}

fn listener_thread(
    ns_path: PathBuf,
    namespace: String,
    ports: Vec<u16>,
    greetings: BTreeMap<u16, Arc<[u8]>>,
    ready: mpsc::Sender<Result<(), LabError>>,
    shutdown: oneshot::Receiver<()>,
) {
    let (runtime, listeners) = match setup(&ns_path, &namespace, &ports) {
        Ok(v) => v,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    runtime.block_on(async move {
        let mut tokio_listeners = Vec::with_capacity(listeners.len());
        for (port, listener) in listeners {
            match TcpListener::from_std(listener) {
                Ok(l) => tokio_listeners.push((port, l)),
                Err(source) => {
                    let _ = ready.send(Err(LabError::Bind {
                        port,
                        namespace: namespace.clone(),
                        source,
                    }));
                    return;
                }
            }
        }
        for (port, listener) in tokio_listeners {
            tokio::spawn(accept_loop(listener, greetings.get(&port).cloned()));
        }
        let _ = ready.send(Ok(()));
        // Resolves when the sender is used or dropped (LabHost dropped).
        let _ = shutdown.await;
    });
    // Dropping the runtime cancels the accept loops and closes the listeners.
    drop(runtime);
}

type Setup = (tokio::runtime::Runtime, Vec<(u16, std::net::TcpListener)>);

fn setup(ns_path: &std::path::Path, namespace: &str, ports: &[u16]) -> Result<Setup, LabError> {
    crate::enter_namespace(ns_path)?;
    let mut listeners = Vec::with_capacity(ports.len());
    for &port in ports {
        let listener = bind_dual_stack(port).map_err(|source| LabError::Bind {
            port,
            namespace: namespace.to_owned(),
            source,
        })?;
        listeners.push((port, listener));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|source| LabError::Io {
            context: "building the listener runtime".to_owned(),
            source,
        })?;
    Ok((runtime, listeners))
}

/// Binds `[::]:port` with IPV6_V6ONLY off, so IPv4 connects are accepted too.
fn bind_dual_stack(port: u16) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Accepts forever; drops each connection at once, or sends the greeting first.
async fn accept_loop(listener: TcpListener, greeting: Option<Arc<[u8]>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                if let Some(greeting) = greeting.clone() {
                    tokio::spawn(greet(stream, greeting));
                } else {
                    drop(stream);
                }
            }
            // EMFILE, ECONNABORTED, ...: back off a little and keep going.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

async fn greet(mut stream: tokio::net::TcpStream, greeting: Arc<[u8]>) {
    let _ = tokio::time::timeout(GREETING_LINGER, async {
        stream.write_all(&greeting).await?;
        stream.shutdown().await?;
        // Drain whatever the client sends until it closes, so closing does
        // not turn into a RST that could discard the greeting client-side.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    })
    .await;
}
