//! The fault proxy's connection handling: accepting clients, carrying out the action decided for
//! each request (answer, reset, cut, corrupt, immutable-tag check), and relaying to the registry.

use sha2::{Digest, Sha256};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::faults::{Action, decide, ecr_error};
use super::http::{Framing, Head, broken, copy_body, copy_exact, read_head, respond};
use super::{IO_TIMEOUT, MAX_CONNECTIONS, MAX_MANIFEST_BYTES, ProxiedRequest, Shared, lock};

pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        if shared.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue; // dropped: a bounded proxy refuses rather than piles up threads
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let s = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || {
                let guard = s.track(&conn);
                let _ = serve_client(conn, &s);
                drop(guard);
                s.active.fetch_sub(1, Ordering::SeqCst);
            })
            .expect("spawn connection thread");
        let mut threads = lock(&shared.threads);
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }
}

fn serve_client(client: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let mut parts = head.first.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let framing = head.framing();
        let body_len = match framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let action = decide(shared, &method, &target, body_len);
        let (status, injected, keep_open) = match action {
            Action::Answer(status, body) => {
                copy_body(&mut reader, framing, &mut io::sink())?;
                observe(shared, &method, &target, status, true);
                respond(&mut writer, &method, status, &body)?;
                (status, true, true)
            }
            Action::Reset(after) => {
                let mut up = connect(shared)?;
                let _guard = shared.track(&up);
                up.write_all(&head.raw)?;
                copy_exact(&mut reader, &mut up, after as u64)?;
                up.flush()?;
                record(shared, &method, &target, 0, true);
                let _ = up.shutdown(Shutdown::Both);
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Action::ImmutableCheck(repo, tag) => {
                let mut body = Vec::new();
                let mut limited = (&mut reader).take(MAX_MANIFEST_BYTES as u64);
                copy_body(&mut limited, framing, &mut body)?;
                let digest = format!("sha256:{:x}", Sha256::digest(&body));
                let key = (repo.clone(), tag.clone());
                let held = shared.state().tags.get(&key).cloned();
                if held.is_some_and(|d| d != digest) {
                    let message = format!(
                        "The image tag '{tag}' already exists in the '{repo}' repository and cannot be overwritten because the repository is immutable."
                    );
                    respond(
                        &mut writer,
                        &method,
                        400,
                        &ecr_error("TAG_INVALID", &message),
                    )?;
                    (400, true, true)
                } else {
                    let mut body = io::Cursor::new(body);
                    let (status, keep) = forward(shared, &head, &mut body, &mut writer, false)?;
                    if status == 201 {
                        shared.state().tags.insert(key, digest);
                    }
                    (status, false, keep)
                }
            }
            Action::Forward(corrupt) => {
                let (status, keep) = forward(shared, &head, &mut reader, &mut writer, corrupt)?;
                (status, corrupt, keep)
            }
            Action::ForwardCut(n) => {
                record(shared, &method, &target, 0, true);
                forward_cut(shared, &head, &mut reader, &mut writer, n)?;
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
        };
        record(shared, &method, &target, status, injected);
        if !keep_open || head.closes() {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Tells the observer (if any) of an answer; called without holding the state lock.
fn observe(shared: &Shared, method: &str, target: &str, status: u16, injected: bool) {
    let observer = shared.state().observer.clone();
    if let Some(observer) = observer {
        observer(&ProxiedRequest {
            method: method.to_string(),
            target: target.to_string(),
            status,
            injected,
        });
    }
}

pub(super) fn record(shared: &Shared, method: &str, target: &str, status: u16, injected: bool) {
    let (method, target) = (method.to_string(), target.to_string());
    shared.state().requests.push(ProxiedRequest {
        method,
        target,
        status,
        injected,
    });
}

fn connect(shared: &Shared) -> io::Result<TcpStream> {
    let up = TcpStream::connect_timeout(&shared.upstream, IO_TIMEOUT)?;
    up.set_read_timeout(Some(IO_TIMEOUT))?;
    up.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(up)
}

/// Sends the request upstream on a fresh connection and relays the answer (its last body byte
/// flipped when `corrupt`): (status, keep the client connection open).
pub(super) fn forward(
    shared: &Arc<Shared>,
    head: &Head,
    body: &mut impl BufRead,
    client: &mut TcpStream,
    corrupt: bool,
) -> io::Result<(u16, bool)> {
    let mut up = connect(shared)?;
    let _guard = shared.track(&up);
    up.write_all(&head.raw)?;
    copy_body(body, head.framing(), &mut up)?;
    let method = head.first.split(' ').next().unwrap_or("");
    up.flush()?;
    let mut upr = BufReader::new(up.try_clone()?);
    loop {
        let Some(resp) = read_head(&mut upr)? else {
            return Err(broken("the registry closed the connection"));
        };
        let status: u16 = resp
            .first
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if !(100..200).contains(&status) || status == 101 {
            let target = head.first.split(' ').nth(1).unwrap_or("");
            observe(shared, method, target, status, corrupt);
        }
        client.write_all(&rewrite_location(&resp, shared))?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let framing = if method == "HEAD" || status == 204 || status == 304 {
            Framing::Empty
        } else {
            match resp.framing() {
                Framing::Empty => Framing::UntilClose,
                f => f,
            }
        };
        match framing {
            Framing::Length(n) if corrupt && n > 0 => {
                copy_exact(&mut upr, client, n - 1)?;
                let mut last = [0u8];
                upr.read_exact(&mut last)?;
                client.write_all(&[last[0] ^ 0xff])?;
            }
            _ => copy_body(&mut upr, framing, client)?,
        }
        client.flush()?;
        let keep = !matches!(framing, Framing::UntilClose) && !resp.closes();
        return Ok((status, keep));
    }
}

/// Like `forward`, but relays only `n` bytes of the answer's body and then drops the connection.
fn forward_cut(
    shared: &Arc<Shared>,
    head: &Head,
    body: &mut impl BufRead,
    client: &mut TcpStream,
    n: usize,
) -> io::Result<()> {
    let mut up = connect(shared)?;
    let _guard = shared.track(&up);
    up.write_all(&head.raw)?;
    copy_body(body, head.framing(), &mut up)?;
    up.flush()?;
    let mut upr = BufReader::new(up.try_clone()?);
    let Some(resp) = read_head(&mut upr)? else {
        return Err(broken("the registry closed the connection"));
    };
    client.write_all(&rewrite_location(&resp, shared))?;
    if let Framing::Length(len) = resp.framing() {
        copy_exact(&mut upr, client, len.min(n as u64))?;
    }
    client.flush()
}

/// The response head with absolute `Location` URLs naming the registry made to name the proxy.
fn rewrite_location(resp: &Head, shared: &Shared) -> Vec<u8> {
    let text = String::from_utf8_lossy(&resp.raw);
    let from = format!("http://{}", shared.upstream);
    let to = format!("http://{}", shared.addr);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive("\r\n") {
        if line.len() > 9 && line[..9].eq_ignore_ascii_case("location:") {
            out.push_str(&line.replacen(&from, &to, 1));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}
