//! The node agent: a long-lived process that runs the plugin's commands for the plugin
//! processes of its host, keeping stores open and pools decoded between them.
//!
//! A plugin process costs little more than starting it, but on its own it must read and
//! decode the pools it allocates from on every call (a pool's allocations are one JSON string
//! in Spiderpool's model: O(records) per call). The agent keeps that state between calls,
//! so an ADD on a full pool costs about what it costs on an empty one. It is what Spiderpool
//! does too (its `spiderpool-agent`, reached by the plugin on a Unix socket).
//!
//! Start it with `spiderpoolctl agent --socket PATH` and name the socket in the netconf's
//! `ipam.ipam_unix_socket_path` (Spiderpool's field). The plugin hands every command but
//! VERSION to the agent; when nothing listens on the socket (no file, or a file left by an
//! agent that stopped), it runs the command itself on the same store, which is locked, so
//! either way is safe and nothing depends on the agent running. A commit is durable before
//! the agent replies, so the agent may be killed at any time.
//!
//! The exchange, one per connection: the plugin writes [`HELLO`], a newline and one line of
//! JSON ([`Request`]: the `CNI_*` environment, the node name and the netconf), and the agent
//! answers [`HELLO`], a newline and one line of JSON (the [`Reply`]). The socket is created
//! `0600`: only the agent's user (root, like the container runtime) may connect.
//!
//! What is kept, per store: a local or etcd store with its engine (one per location and lock
//! timeout); in the Kubernetes mode the API server's client (one per kubeconfig and request
//! timeout: its connections are reused). Whatever failed because of the store or the API
//! server (try again later, store failures, API errors such as expired credentials) is
//! dropped, and opened again from the netconf by the next command.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::netconf::{CniEnv, NetConf, MAX_NETCONF_BYTES};
use crate::plugin::{Engines, Reply};
use crate::Error;

/// The first line of each message, both ways: names the protocol and its version.
pub const HELLO: &str = "spiderpool-rs-agent/1";

/// Largest message accepted either way (a netconf, escaped, plus the environment; a reply).
const MAX_MESSAGE_BYTES: u64 = 4 * MAX_NETCONF_BYTES as u64;

/// How long the agent waits for a connected plugin's request.
const REQUEST_READ_LIMIT: Duration = Duration::from_secs(10);

/// How long the agent may block writing a reply to a plugin that does not read it.
const REPLY_WRITE_LIMIT: Duration = Duration::from_secs(1);

/// How much longer than the command's own bound the plugin waits for the agent's reply.
const REPLY_MARGIN: Duration = Duration::from_secs(5);

/// How long the plugin polls for the agent's reply before it sleeps on the socket. A process
/// that sleeps while the agent works leaves its CPU idle, and a virtual machine that halts an
/// idle CPU at once (`guest_halt_poll_ns` 0, as on this project's machines) wakes it again
/// late and runs the rest of the process on a cold CPU: measured here, sleeping made an ADD
/// 0.3–0.5 ms slower than polling, more than the agent's own work. Polling yields the CPU to
/// whatever else is runnable at each turn, and stops after about what an allocation takes;
/// a longer wait (a busy agent) sleeps as before. The price: up to this much CPU per call.
const REPLY_POLL: Duration = Duration::from_millis(1);

/// One CNI invocation, as the plugin hands it to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The `CNI_*` environment.
    #[serde(flatten)]
    pub env: CniEnv,
    /// The plugin's host.
    pub node: String,
    /// The netconf the plugin read on stdin.
    pub netconf: String,
}

/// Hands the invocation to the agent the netconf names, if one listens: `None` when the
/// netconf names no socket, is not valid (this process then reports it) or nothing listens
/// there. A reply that cannot be had from a listening agent is an error reply naming the
/// socket.
pub fn forward(env: &CniEnv, stdin: &[u8], node: &str) -> Option<Reply> {
    let conf = NetConf::parse(stdin).ok()?;
    let socket = conf
        .ipam
        .ipam_unix_socket_path
        .as_deref()
        .filter(|s| !s.is_empty())?;
    let netconf = std::str::from_utf8(stdin).ok()?;
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return None
        }
        Err(e) => return Some(unavailable(&conf, socket, &e.to_string())),
    };
    let request = Request {
        env: env.clone(),
        node: node.to_string(),
        netconf: netconf.to_string(),
    };
    let wait = conf.command_timeout() + REPLY_MARGIN;
    Some(
        exchange(stream, &request, wait)
            .unwrap_or_else(|reason| unavailable(&conf, socket, &reason)),
    )
}

fn unavailable(conf: &NetConf, socket: &str, reason: &str) -> Reply {
    let e = Error::NotAvailable {
        reason: format!("agent at {socket}: {reason}"),
    };
    let version = if conf.cni_version.is_empty() {
        "1.1.0"
    } else {
        &conf.cni_version
    };
    Reply::error(version, &e)
}

fn exchange(mut stream: UnixStream, request: &Request, wait: Duration) -> Result<Reply, String> {
    let line = serde_json::to_string(request).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(wait))
        .and_then(|()| stream.set_write_timeout(Some(wait)))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(HELLO.len() + line.len() + 2);
    out.extend_from_slice(HELLO.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    stream
        .write_all(&out)
        .map_err(|e| format!("sending: {e}"))?;
    let polled = poll_reply(&stream).map_err(|e| format!("reading the reply: {e}"))?;
    let rest = Read::chain(std::io::Cursor::new(polled), stream);
    let mut reader = BufReader::new(Read::take(rest, MAX_MESSAGE_BYTES));
    let mut hello = String::new();
    reader
        .read_line(&mut hello)
        .map_err(|e| format!("reading the reply: {e}"))?;
    if hello.trim_end() != HELLO {
        return Err(format!(
            "not a spiderpool-rs agent (it answered {:?}, expected {HELLO:?})",
            hello.chars().take(40).collect::<String>()
        ));
    }
    let mut body = String::new();
    reader
        .read_line(&mut body)
        .map_err(|e| format!("reading the reply: {e}"))?;
    serde_json::from_str(&body).map_err(|e| format!("a reply that does not decode: {e}"))
}

/// The first bytes of the agent's reply, read without sleeping for up to [`REPLY_POLL`]
/// (none when the agent takes longer, or closed the connection: the caller then reads on,
/// sleeping, and finds what is left).
fn poll_reply(stream: &UnixStream) -> std::io::Result<Vec<u8>> {
    stream.set_nonblocking(true)?;
    let start = Instant::now();
    let mut buf = vec![0; 4096];
    let polled = loop {
        match (&*stream).read(&mut buf) {
            Ok(n) => break Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() >= REPLY_POLL {
                    break Ok(0);
                }
                std::thread::yield_now();
            }
            Err(e) => break Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    buf.truncate(polled?);
    Ok(buf)
}

/// Binds the agent's socket at `path`: a socket file left there by an agent that stopped is
/// replaced; any other file there is an error. The socket is made `0600`.
pub fn bind(path: &Path) -> Result<tokio::net::UnixListener, Error> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let io = |source: std::io::Error| Error::AgentSocket {
        path: path.display().to_string(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(Error::Usage(format!(
                    "an agent already listens on {}",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        Ok(_) => {
            return Err(Error::Usage(format!(
                "{} exists and is not a socket",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Binds `path` ([`bind`]) and serves plugin processes there until the process ends: what
/// `spiderpoolctl agent` runs. Call it on a current-thread runtime.
pub async fn run(path: &Path) -> Result<(), Error> {
    let listener = bind(path)?;
    eprintln!("spiderpool agent: listening on {}", path.display());
    tokio::task::LocalSet::new()
        .run_until(serve(
            listener,
            Arc::new(Engines::kept()),
            path.to_path_buf(),
        ))
        .await;
    Ok(())
}

/// Serves plugin processes on `listener` until the process ends, each connection as its own
/// task on the current thread (call it inside a [`tokio::task::LocalSet`]). Stores are kept
/// open in `engines`.
pub async fn serve(listener: tokio::net::UnixListener, engines: Arc<Engines>, socket: PathBuf) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("agent at {}: accepting: {e}", socket.display());
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let engines = Arc::clone(&engines);
        tokio::task::spawn_local(async move {
            if let Err(e) = answer(stream, &engines).await {
                eprintln!("agent: a connection ended early: {e}");
            }
        });
    }
}

/// Reads one request from `stream`, runs it and writes the reply.
async fn answer(stream: tokio::net::UnixStream, engines: &Engines) -> Result<(), String> {
    let mut stream = tokio::io::BufReader::new(stream);
    let mut hello = String::new();
    let mut body = String::new();
    let read = async {
        let mut limited = (&mut stream).take(MAX_MESSAGE_BYTES);
        limited
            .read_line(&mut hello)
            .await
            .map_err(|e| e.to_string())?;
        if hello.trim_end() != HELLO {
            return Err(format!(
                "not a plugin request (it began {:?})",
                hello.chars().take(40).collect::<String>()
            ));
        }
        limited
            .read_line(&mut body)
            .await
            .map_err(|e| e.to_string())
    };
    // A client that connects and sends nothing is dropped, not waited for.
    tokio::time::timeout(REQUEST_READ_LIMIT, read)
        .await
        .map_err(|_| format!("no request within {} s", REQUEST_READ_LIMIT.as_secs()))??;
    let reply = match serde_json::from_str::<Request>(&body) {
        Ok(req) => {
            crate::plugin::run_with(&req.env, req.netconf.as_bytes(), &req.node, engines).await
        }
        Err(e) => Reply::error(
            "1.1.0",
            &Error::InvalidNetconf {
                reason: format!("the agent could not decode the request: {e}"),
            },
        ),
    };
    let mut out = format!("{HELLO}\n");
    out.push_str(&serde_json::to_string(&reply).map_err(|e| e.to_string())?);
    out.push('\n');
    // The reply is written at once, blocking: an asynchronous write of a fresh connection
    // waits for the runtime to learn that the socket is writable (~0.2 ms measured), and the
    // reply (a few hundred bytes) fits the socket's buffer, so the write does not wait for the
    // plugin (bounded all the same).
    let stream = stream.into_inner().into_std().map_err(|e| e.to_string())?;
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(REPLY_WRITE_LIMIT)))
        .map_err(|e| e.to_string())?;
    (&stream)
        .write_all(out.as_bytes())
        .map_err(|e| e.to_string())?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())
}
