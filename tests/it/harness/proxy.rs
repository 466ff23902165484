//! An HTTP/1.1 proxy between hoist and a registry that injects faults (error statuses, resets,
//! truncated responses) by rule and logs every request. One request per client connection and
//! a fresh upstream connection per request, so every request is seen and steered on its own.

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;

use super::runtime;

/// Bound on a request or response head, and on a chunk-size or trailer line.
const MAX_HEAD: u64 = 64 * 1024;

pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: tokio::task::AbortHandle,
}

#[derive(Clone, Debug)]
pub enum Action {
    /// Answer this status with a distribution-style error body, without asking upstream.
    Status { code: u16, retry_after: Option<u32> },
    /// Close the connection without any response (RST), before reading the body.
    Reset,
    /// Forward, but reset the connection after the response head and half the body.
    CutResponse,
    /// Answer 400 with an AWS JSON-protocol error of this code (`AccessDeniedException`).
    AwsError { code: String },
    /// Forward (the request takes effect upstream), then answer `status` with the
    /// distribution error `error` instead: a registry that did the work and still said no, as
    /// distribution does when two uploads of one blob finish at once.
    ReplaceAnswer { status: u16, error: &'static str },
    /// Hold the connection and never answer (a registry that hangs).
    Stall,
    /// Forward the request head and only `after` bytes of its body, then drop both
    /// connections: an upload cut off part way.
    CutRequest { after: u64 },
    /// Forward, but answer only after this long (a slow registry).
    Slow { millis: u64 },
    /// Forward, but with a wrong `Docker-Content-Digest` in the answer.
    WrongDigest,
}

/// What chaos mode may pick for a request (see [`FaultProxy::chaos`]).
fn chaos_action(rng: &mut rand::rngs::StdRng, method: &str, path: &str, body: u64) -> Action {
    use rand::Rng;
    let status = |code| Action::Status {
        code,
        retry_after: None,
    };
    let mut choices = vec![
        Action::Status {
            code: 429,
            retry_after: Some(0),
        },
        status(429),
        status(500),
        status(502),
        status(503),
        Action::Reset,
        Action::Slow { millis: 20 },
    ];
    if body > 0 {
        choices.push(Action::CutRequest {
            after: rng.random_range(0..body),
        });
    }
    if method == "GET" {
        choices.push(Action::CutResponse);
    }
    if path.contains("/manifests/") {
        choices.push(Action::WrongDigest);
    }
    let at = rng.random_range(0..choices.len());
    choices.swap_remove(at)
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub method: Option<String>,
    pub path_contains: String,
    /// `None`: every matching request; `Some(n)`: the next n matching requests.
    pub times: Option<u32>,
    pub action: Action,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Body bytes read from the client (payload only for chunked bodies), as of the answer.
    pub request_body_bytes: u64,
    /// The upstream or injected status; `None` for a reset or when upstream did not answer.
    pub status: Option<u16>,
    pub fault: bool,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// Chaos mode: a fault for this share (per mille) of the requests no rule matches.
    chaos: Option<(rand::rngs::StdRng, u32)>,
    log: Vec<Record>,
    /// Requests being answered now, and the most seen at once.
    in_flight: u32,
    max_in_flight: u32,
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<Mutex<State>>);

impl InFlight {
    fn start(state: &Arc<Mutex<State>>) -> InFlight {
        let mut s = lock(state);
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.0).in_flight -= 1;
    }
}

impl FaultProxy {
    /// Proxies a free loopback port to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        let addr = std_listener.local_addr().expect("local addr");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(Mutex::new(State::default()));
        let accept = {
            // from_std registers with the reactor of the runtime entered here.
            let _guard = runtime().enter();
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
            let ends = Ends {
                upstream,
                proxy: addr,
            };
            let state = state.clone();
            runtime()
                .spawn(async move {
                    loop {
                        if let Ok((stream, _)) = listener.accept().await {
                            tokio::spawn(serve(stream, ends, state.clone()));
                        }
                    }
                })
                .abort_handle()
        };
        FaultProxy {
            addr,
            state,
            accept,
        }
    }

    /// Rules are checked in insertion order; the first match applies.
    pub fn add_rule(&self, rule: Rule) {
        lock(&self.state).rules.push(rule);
    }

    /// From now on, `per_mille` of the requests no rule matches get a random fault
    /// (reproducible from `seed`): 429 with and without Retry-After, 500/502/503, resets,
    /// requests cut at a random byte, truncated and slow answers, wrong digests.
    pub fn chaos(&self, seed: u64, per_mille: u32) {
        use rand::SeedableRng;
        lock(&self.state).chaos = Some((rand::rngs::StdRng::seed_from_u64(seed), per_mille));
    }

    /// How many faults were injected so far.
    pub fn faults(&self) -> usize {
        lock(&self.state).log.iter().filter(|r| r.fault).count()
    }

    pub fn clear_rules(&self) {
        lock(&self.state).rules.clear();
    }

    pub fn log(&self) -> Vec<Record> {
        lock(&self.state).log.clone()
    }

    pub fn clear_log(&self) {
        let mut state = lock(&self.state);
        state.log.clear();
        state.max_in_flight = state.in_flight;
    }

    /// The most requests answered at once since the start or the last `clear_log`.
    pub fn max_in_flight(&self) -> u32 {
        lock(&self.state).max_in_flight
    }

    /// Request-body bytes of blob uploads (monolithic PUTs and chunked PATCHes).
    pub fn uploaded_bytes(&self) -> u64 {
        self.log()
            .iter()
            .filter(|r| {
                (r.method == "PUT" || r.method == "PATCH") && r.path.contains("/blobs/uploads/")
            })
            .map(|r| r.request_body_bytes)
            .sum()
    }

    /// How many blobs were downloaded (GETs of `/blobs/<digest>`).
    pub fn blob_downloads(&self) -> usize {
        self.log()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/blobs/sha256:"))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A panicking test must not take the proxy down with it.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone, Copy)]
struct Ends {
    upstream: SocketAddr,
    proxy: SocketAddr,
}

/// The action of the first live rule matching the request, spending one of its `times`;
/// else, in chaos mode, maybe a random fault.
fn take_action(state: &Mutex<State>, method: &str, target: &str, body: u64) -> Option<Action> {
    let mut state = lock(state);
    let index = state.rules.iter().position(|r| {
        r.times != Some(0)
            && r.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && target.contains(&r.path_contains)
    });
    let Some(index) = index else {
        let (rng, per_mille) = state.chaos.as_mut()?;
        use rand::Rng;
        return (rng.random_range(0..1000) < *per_mille)
            .then(|| chaos_action(rng, method, target, body));
    };
    let rule = &mut state.rules[index];
    let action = rule.action.clone();
    if let Some(times) = &mut rule.times {
        *times -= 1;
        if *times == 0 {
            state.rules.remove(index);
        }
    }
    Some(action)
}

fn record(state: &Mutex<State>, record: Record) {
    lock(state).log.push(record);
}

async fn serve(stream: TcpStream, ends: Ends, state: Arc<Mutex<State>>) {
    let mut client = BufReader::new(stream);
    // A TLS handshake to this plain-HTTP proxy: refused at once, as a registry would.
    if client
        .fill_buf()
        .await
        .is_ok_and(|b| b.first() == Some(&0x16))
    {
        return;
    }
    let Some(head) = read_head(&mut client).await else {
        return;
    };
    let _in_flight = InFlight::start(&state);
    let mut start = head.start.split(' ');
    let method = start.next().unwrap_or_default().to_string();
    let mut path = start.next().unwrap_or_default().to_string();
    // AWS JSON APIs all POST to `/`: the operation is in X-Amz-Target, so rules and the log
    // see it as `/#Service.Operation`.
    if let Some(operation) = head.get("x-amz-target") {
        path = format!("{path}#{operation}");
    }
    let mut entry = Record {
        method,
        path,
        request_body_bytes: 0,
        status: None,
        fault: true,
    };
    let body = head
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    match take_action(&state, &entry.method, &entry.path, body) {
        Some(Action::Reset) => {
            record(&state, entry);
            let _ = client.get_ref().set_zero_linger();
        }
        Some(Action::CutRequest { after }) => {
            if let Ok(mut upstream) = TcpStream::connect(ends.upstream).await {
                let sent = AtomicU64::new(0);
                let _ = upstream.write_all(&head.to_bytes()).await;
                let _ = copy_exact(&mut client, &mut upstream, after, &sent).await;
                let _ = upstream.flush().await;
                entry.request_body_bytes = sent.into_inner();
                let _ = upstream.set_zero_linger();
            }
            record(&state, entry);
            let _ = client.get_ref().set_zero_linger();
        }
        Some(Action::Stall) => {
            record(&state, entry);
            let _held = client;
            std::future::pending::<()>().await;
        }
        Some(Action::AwsError { code }) => {
            let discarded = AtomicU64::new(0);
            let _ = copy_body(&mut client, &mut tokio::io::sink(), &head, &discarded).await;
            entry.request_body_bytes = discarded.into_inner();
            entry.status = Some(400);
            record(&state, entry);
            let body = format!(r#"{{"__type":"{code}","message":"injected {code}"}}"#);
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Some(Action::Status { code, retry_after }) => {
            let discarded = AtomicU64::new(0);
            let _ = copy_body(&mut client, &mut tokio::io::sink(), &head, &discarded).await;
            entry.request_body_bytes = discarded.into_inner();
            entry.status = Some(code);
            record(&state, entry);
            let _ = client.write_all(&injected(code, retry_after)).await;
            let _ = client.shutdown().await;
        }
        action => {
            entry.fault = action.is_some();
            let alter = match action {
                Some(Action::ReplaceAnswer { status, error }) => {
                    Alter::Replace(error_answer(status, error, None))
                }
                Some(Action::CutResponse) => Alter::Cut,
                Some(Action::Slow { millis }) => Alter::Slow(millis),
                Some(Action::WrongDigest) => Alter::WrongDigest,
                _ => Alter::Nothing,
            };
            let leftover = client.buffer().to_vec();
            forward(
                client.into_inner(),
                leftover,
                head,
                entry,
                ends,
                &state,
                alter,
            )
            .await;
        }
    }
}

/// An injected error answer, closing the connection.
fn injected(code: u16, retry_after: Option<u32>) -> Vec<u8> {
    let error = match code {
        401 => "UNAUTHORIZED",
        403 => "DENIED",
        404 => "NOT_FOUND",
        429 => "TOOMANYREQUESTS",
        502..=504 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    error_answer(code, error, retry_after)
}

/// A distribution-style error answer with this status and error code, closing the connection.
fn error_answer(code: u16, error: &str, retry_after: Option<u32>) -> Vec<u8> {
    let reason = match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    };
    let body = format!(r#"{{"errors":[{{"code":"{error}","message":"injected"}}]}}"#);
    let retry_after = retry_after
        .map(|s| format!("Retry-After: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry_after}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// How a forwarded request's answer is changed on the way back.
enum Alter {
    Nothing,
    /// Reset after the head and half the body.
    Cut,
    /// Replaced by this answer (the request still took effect).
    Replace(Vec<u8>),
    /// Relayed after this many milliseconds.
    Slow(u64),
    /// With a wrong Docker-Content-Digest.
    WrongDigest,
}

/// Sends the request on a new upstream connection and relays the answer. The body goes up
/// while the answer comes down, so an early answer (say a 401 before the body is read) is
/// relayed rather than lost.
async fn forward(
    mut stream: TcpStream,
    leftover: Vec<u8>,
    mut head: Head,
    mut entry: Record,
    ends: Ends,
    state: &Mutex<State>,
    alter: Alter,
) {
    let cut = matches!(alter, Alter::Cut);
    let Ok(mut upstream) = TcpStream::connect(ends.upstream).await else {
        // Not a rule's fault: the registry is not there.
        entry.status = Some(502);
        entry.fault = false;
        record(state, entry);
        let _ = stream.write_all(&injected(502, None)).await;
        return;
    };
    // Asking upstream to close makes Go's net/http say so to the client as well.
    head.set("Connection", "close");
    let sent = AtomicU64::new(0);
    {
        let (client_read, mut client_write) = stream.split();
        let mut body = BufReader::new(Cursor::new(leftover).chain(client_read));
        let (upstream_read, mut upstream_write) = upstream.split();
        let mut answer = BufReader::new(upstream_read);
        let request = async {
            upstream_write.write_all(&head.to_bytes()).await?;
            copy_body(&mut body, &mut upstream_write, &head, &sent).await
        };
        let response = async {
            let Some(mut response) = read_head(&mut answer).await else {
                entry.request_body_bytes = sent.load(Ordering::SeqCst);
                record(state, entry);
                return Ok(());
            };
            entry.status = response
                .start
                .split(' ')
                .nth(1)
                .and_then(|code| code.parse().ok());
            entry.request_body_bytes = sent.load(Ordering::SeqCst);
            if let Alter::Replace(replacement) = &alter {
                entry.status = replacement
                    .split(|b| *b == b' ')
                    .nth(1)
                    .and_then(|code| std::str::from_utf8(code).ok()?.parse().ok());
                record(state, entry);
                tokio::io::copy_buf(&mut answer, &mut tokio::io::sink()).await?;
                client_write.write_all(replacement).await?;
                return client_write.shutdown().await;
            }
            // Logged before the client can see the answer and move on.
            record(state, entry);
            match alter {
                Alter::Slow(millis) => {
                    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
                }
                Alter::WrongDigest if response.get("docker-content-digest").is_some() => {
                    response.set(
                        "Docker-Content-Digest",
                        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                    );
                }
                _ => {}
            }
            if let Some(location) = response.get("location") {
                let rewritten = rewrite_location(location, ends);
                response.set("Location", &rewritten);
            }
            response.set("Connection", "close");
            client_write.write_all(&response.to_bytes()).await?;
            if cut {
                let half = response
                    .get("content-length")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    / 2;
                tokio::io::copy(&mut (&mut answer).take(half), &mut client_write).await?;
                return Ok(());
            }
            tokio::io::copy_buf(&mut answer, &mut client_write).await?;
            client_write.shutdown().await
        };
        let _: (std::io::Result<()>, std::io::Result<()>) = tokio::join!(request, response);
    }
    if cut {
        let _ = stream.set_zero_linger();
    }
}

/// Points an absolute `Location` at the upstream back at the proxy.
fn rewrite_location(location: &str, ends: Ends) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[..end] == ends.upstream.to_string() {
        format!("{scheme}://{}{}", ends.proxy, &rest[end..])
    } else {
        location.to_string()
    }
}

/// Copies a request body framed by `head` (Content-Length, or chunked with its framing kept
/// verbatim), counting payload bytes into `sent` as they go.
async fn copy_body<R, W>(
    from: &mut R,
    to: &mut W,
    head: &Head,
    sent: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let chunked = head
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if !chunked {
        // A missing or garbled length means no body; upstream judges the rest.
        let length = head
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        return copy_exact(from, to, length, sent).await;
    }
    loop {
        let line = read_line(from).await?;
        to.write_all(&line).await?;
        let size = String::from_utf8_lossy(&line);
        let size = size.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let line = read_line(from).await?;
                to.write_all(&line).await?;
                if line.trim_ascii().is_empty() {
                    return Ok(());
                }
            }
        }
        copy_exact(from, to, size, sent).await?;
        let end = read_line(from).await?;
        to.write_all(&end).await?;
    }
}

async fn copy_exact<R, W>(
    from: &mut R,
    to: &mut W,
    mut left: u64,
    sent: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while left > 0 {
        let buf = from.fill_buf().await?;
        if buf.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        to.write_all(&buf[..n]).await?;
        from.consume(n);
        left -= n as u64;
        sent.fetch_add(n as u64, Ordering::SeqCst);
    }
    Ok(())
}

/// One line including its `\n`; an error at end of stream or past `MAX_HEAD`.
async fn read_line<R: AsyncBufRead + Unpin>(from: &mut R) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    from.take(MAX_HEAD).read_until(b'\n', &mut line).await?;
    if line.ends_with(b"\n") {
        Ok(line)
    } else {
        Err(std::io::ErrorKind::InvalidData.into())
    }
}

/// An HTTP/1.1 message head: start line and headers in order.
pub(super) struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every `name` header by one with `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Reads a message head up to its empty line, at most `MAX_HEAD` bytes; `None` on end of
/// stream, error or oversize.
pub(super) async fn read_head<R: AsyncBufRead + Unpin>(reader: &mut R) -> Option<Head> {
    let mut budget = MAX_HEAD;
    let mut lines: Vec<String> = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .take(budget)
            .read_until(b'\n', &mut line)
            .await
            .ok()?;
        if !line.ends_with(b"\n") {
            return None;
        }
        budget -= n as u64;
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        match (line.is_empty(), lines.is_empty()) {
            // Empty lines before the start line are tolerated (RFC 9112 section 2.2).
            (true, true) => {}
            (true, false) => break,
            (false, _) => lines.push(line),
        }
    }
    let mut lines = lines.into_iter();
    let start = lines.next()?;
    let headers = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect();
    Some(Head { start, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_points_back_at_the_proxy() {
        let ends = Ends {
            upstream: "127.0.0.1:5000".parse().unwrap(),
            proxy: "127.0.0.1:6000".parse().unwrap(),
        };
        assert_eq!(
            rewrite_location("http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=y", ends),
            "http://127.0.0.1:6000/v2/a/blobs/uploads/x?_state=y"
        );
        assert_eq!(
            rewrite_location("http://127.0.0.1:50000/v2/", ends),
            "http://127.0.0.1:50000/v2/"
        );
        assert_eq!(
            rewrite_location("/v2/a/blobs/uploads/x", ends),
            "/v2/a/blobs/uploads/x"
        );
    }

    #[test]
    fn rules_apply_in_order_and_are_spent() {
        // Nothing listens upstream: only the rule bookkeeping is exercised.
        let proxy = FaultProxy::start(crate::harness::loopback(9));
        let rule = |method: Option<&str>, times, code| Rule {
            method: method.map(str::to_string),
            path_contains: "/blobs/".into(),
            times,
            action: Action::Status {
                code,
                retry_after: None,
            },
        };
        proxy.add_rule(rule(Some("PUT"), Some(1), 500));
        proxy.add_rule(rule(None, None, 503));
        let code = |method: &str, path: &str| match take_action(&proxy.state, method, path, 0) {
            Some(Action::Status { code, .. }) => Some(code),
            _ => None,
        };
        assert_eq!(code("PUT", "/v2/a/blobs/uploads/1"), Some(500));
        assert_eq!(code("PUT", "/v2/a/blobs/uploads/1"), Some(503));
        assert_eq!(code("GET", "/v2/a/manifests/x"), None);
        proxy.clear_rules();
        assert_eq!(code("PUT", "/v2/a/blobs/uploads/1"), None);
    }

    #[tokio::test]
    async fn chunked_bodies_keep_their_framing() {
        let raw = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\r\nhello\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\nrest";
        let mut reader = BufReader::new(&raw[..]);
        let head = read_head(&mut reader).await.unwrap();
        let mut out = Vec::new();
        let sent = AtomicU64::new(0);
        copy_body(&mut reader, &mut out, &head, &sent)
            .await
            .unwrap();
        assert_eq!(out, b"5;ext\r\nhello\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n");
        assert_eq!(sent.into_inner(), 8);
    }
}
