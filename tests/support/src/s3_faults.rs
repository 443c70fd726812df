//! A fault-injecting HTTP/1.1 proxy in front of the test S3 server.
//!
//! [`FaultProxy::start`] listens on a loopback port and forwards every
//! request to the S3 endpoint it is given (SeaweedFS on the test machines),
//! unless a [`Rule`] the test set picks it for an [`Action`]:
//! - [`Action::Fail`]: answer `503 SlowDown` without forwarding (nothing
//!   reaches the store; S3 clients retry it);
//! - [`Action::Delay`]: forward after a pause;
//! - [`Action::DropResponse`]: forward, let the store complete the request
//!   (a PUT lands), then close the client connection without answering: the
//!   write lands, the answer is lost.
//!
//! Rules select requests by method and a substring of the raw request
//! target (path and query as sent, e.g. `/_delta_log/`), and fire for a
//! share of the matching requests drawn from a seeded RNG. The rules of a
//! running proxy can be replaced at any time ([`FaultProxy::set_rules`]).
//! [`FaultProxy::counts`] and [`FaultProxy::events`] tell what was done, so
//! a test can assert that its faults really happened.
//!
//! Requests are forwarded byte for byte (head and body): AWS SigV4 signs
//! the Host header and the payload, and the store must see what the
//! client signed. Only the hop-by-hop `Connection`/`Keep-Alive` headers are
//! replaced by `Connection: close` upstream (one upstream connection per
//! request, read to its end); the client side keeps its connection alive
//! across requests, as object_store's pooled connections expect.

use anyhow::{Context, Result};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The HTTP methods S3 clients use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
    Head,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        }
    }
}

/// What the proxy does to a request a rule picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer `503 SlowDown` without forwarding.
    Fail,
    /// Forward after this pause.
    Delay(Duration),
    /// Forward, read the store's whole answer, then close the client
    /// connection without a byte of it.
    DropResponse,
}

/// The kind of an [`Action`], for counts and events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionKind {
    Fail,
    Delay,
    DropResponse,
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Fail => ActionKind::Fail,
            Action::Delay(_) => ActionKind::Delay,
            Action::DropResponse => ActionKind::DropResponse,
        }
    }
}

/// Picks requests for an action: those of `methods` (empty: any) whose
/// raw request target contains `path_contains`, each with probability
/// `share`, at most `limit` times (None: no limit). The first rule (in
/// order) that matches and fires decides.
#[derive(Clone, Debug)]
pub struct Rule {
    pub methods: Vec<Method>,
    pub path_contains: String,
    pub share: f64,
    pub limit: Option<u64>,
    pub action: Action,
}

impl Rule {
    /// Every request, always.
    pub fn new(action: Action) -> Rule {
        Rule {
            methods: Vec::new(),
            path_contains: String::new(),
            share: 1.0,
            limit: None,
            action,
        }
    }

    pub fn fail() -> Rule {
        Rule::new(Action::Fail)
    }

    pub fn delay(pause: Duration) -> Rule {
        Rule::new(Action::Delay(pause))
    }

    pub fn drop_response() -> Rule {
        Rule::new(Action::DropResponse)
    }

    /// Only requests of this method (repeat for several).
    pub fn method(mut self, m: Method) -> Rule {
        self.methods.push(m);
        self
    }

    /// Only requests whose target (path and query as sent) contains `s`.
    pub fn path(mut self, s: &str) -> Rule {
        self.path_contains = s.to_string();
        self
    }

    /// The share of matching requests to act on, in [0, 1].
    pub fn share(mut self, share: f64) -> Rule {
        self.share = share.clamp(0.0, 1.0);
        self
    }

    /// Fires at most `n` more times.
    pub fn times(mut self, n: u64) -> Rule {
        self.limit = Some(n);
        self
    }

    fn matches(&self, method: &str, target: &str) -> bool {
        self.limit != Some(0)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m.as_str() == method))
            && target.contains(&self.path_contains)
    }
}

/// What the proxy did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests read from clients.
    pub requests: u64,
    /// Requests sent to the store (delayed and dropped ones included).
    pub forwarded: u64,
    /// Answered 503 without forwarding.
    pub failed: u64,
    /// Forwarded after a pause.
    pub delayed: u64,
    /// Forwarded, answer withheld, client connection closed.
    pub dropped: u64,
    /// The store could not be reached or answered badly (the client
    /// connection was closed without an answer).
    pub upstream_errors: u64,
}

/// One action taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    pub action: ActionKind,
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// The store's status, for forwarded requests (None: failed, or the
    /// store gave no answer).
    pub upstream_status: Option<u16>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    failed: AtomicU64,
    delayed: AtomicU64,
    dropped: AtomicU64,
    upstream_errors: AtomicU64,
}

struct State {
    /// `host:port` of the store.
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    rng: Mutex<SplitMix64>,
    counters: Counters,
    events: Mutex<Vec<FaultEvent>>,
}

/// A poisoned lock only means another connection's task panicked: the
/// data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn decide(&self, method: &str, target: &str) -> Option<Action> {
        let mut rules = lock(&self.rules);
        let mut rng = lock(&self.rng);
        let rule = rules
            .iter_mut()
            .filter(|r| r.matches(method, target))
            .find(|r| rng.next_f64() < r.share)?;
        if let Some(n) = &mut rule.limit {
            *n -= 1;
        }
        Some(rule.action)
    }

    fn record(&self, action: ActionKind, method: &str, target: &str, status: Option<u16>) {
        lock(&self.events).push(FaultEvent {
            action,
            method: method.to_string(),
            target: target.to_string(),
            upstream_status: status,
        });
    }
}

/// Small, seeded, good enough for picking requests (SplitMix64).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The proxy. It runs on a small runtime of its own (so a test that blocks
/// its thread on a child process does not stall it) and stops when
/// dropped.
pub struct FaultProxy {
    addr: std::net::SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`, e.g. the value of
    /// `DAG_TEST_S3_ENDPOINT`) with no rules: everything passes.
    pub fn start(upstream: &str, seed: u64) -> Result<FaultProxy> {
        let url = url::Url::parse(upstream).with_context(|| format!("bad endpoint {upstream}"))?;
        anyhow::ensure!(
            url.scheme() == "http",
            "the fault proxy speaks plain HTTP only, not {upstream}"
        );
        let host = url
            .host_str()
            .with_context(|| format!("no host in {upstream}"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let state = Arc::new(State {
            upstream: format!("{host}:{port}"),
            rules: Mutex::new(Vec::new()),
            rng: Mutex::new(SplitMix64(seed)),
            counters: Counters::default(),
            events: Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind the proxy")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-fault-proxy")
            .enable_all()
            .build()
            .context("the proxy's runtime")?;
        let st = state.clone();
        runtime.spawn(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("s3 fault proxy: cannot listen: {e}");
                    return;
                }
            };
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(&st, sock).await;
                });
            }
        });
        Ok(FaultProxy {
            addr,
            state,
            runtime: Some(runtime),
        })
    }

    /// `http://127.0.0.1:<port>`: the S3 endpoint to give clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the rules (in order: the first that matches and fires
    /// decides).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *lock(&self.state.rules) = rules;
    }

    /// No faults from here on.
    pub fn clear_rules(&self) {
        self.set_rules(Vec::new());
    }

    pub fn counts(&self) -> FaultCounts {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        FaultCounts {
            requests: get(&c.requests),
            forwarded: get(&c.forwarded),
            failed: get(&c.failed),
            delayed: get(&c.delayed),
            dropped: get(&c.dropped),
            upstream_errors: get(&c.upstream_errors),
        }
    }

    /// Every action taken so far, in order.
    pub fn events(&self) -> Vec<FaultEvent> {
        lock(&self.state.events).clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Does not block, so it is allowed inside a test's runtime too.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Longest request or response head accepted.
const MAX_HEAD: usize = 1 << 20;
/// How long the store may take to answer one request.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// Buffered reading of HTTP/1.1 messages from a stream.
struct Reader {
    buf: Vec<u8>,
    start: usize,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            buf: Vec::new(),
            start: 0,
        }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Reads more; false at EOF.
    async fn fill(&mut self, s: &mut TcpStream) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = s.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let out = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        out
    }

    /// A message head through its empty line; None at a clean EOF before
    /// any byte of it.
    async fn head(&mut self, s: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = find(self.available(), b"\r\n\r\n") {
                return Ok(Some(self.take(i + 4)));
            }
            if self.available().len() > MAX_HEAD {
                return Err(invalid("message head too long"));
            }
            if !self.fill(s).await? {
                return if self.available().is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    /// One line, CRLF included.
    async fn line(&mut self, s: &mut TcpStream) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(self.available(), b"\r\n") {
                return Ok(self.take(i + 2));
            }
            if self.available().len() > MAX_HEAD {
                return Err(invalid("line too long"));
            }
            if !self.fill(s).await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn exact(&mut self, s: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
        while self.available().len() < n {
            if !self.fill(s).await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.take(n))
    }

    async fn read_to_eof(&mut self, s: &mut TcpStream) -> io::Result<Vec<u8>> {
        while self.fill(s).await? {}
        let n = self.available().len();
        Ok(self.take(n))
    }

    /// A body as framed, raw (a chunked body keeps its chunk lines).
    async fn body(&mut self, s: &mut TcpStream, framing: Framing) -> io::Result<Vec<u8>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => self.exact(s, n).await,
            Framing::ToEof => self.read_to_eof(s).await,
            Framing::Chunked => {
                let mut raw = Vec::new();
                loop {
                    let line = self.line(s).await?;
                    raw.extend_from_slice(&line);
                    let text = std::str::from_utf8(&line).map_err(|_| invalid("chunk size"))?;
                    let size = text.split(';').next().unwrap_or("").trim();
                    let size =
                        usize::from_str_radix(size, 16).map_err(|_| invalid("chunk size"))?;
                    if size == 0 {
                        // Trailers, through the empty line.
                        loop {
                            let t = self.line(s).await?;
                            raw.extend_from_slice(&t);
                            if t == b"\r\n" {
                                return Ok(raw);
                            }
                        }
                    }
                    raw.extend_from_slice(&self.exact(s, size + 2).await?);
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    ToEof,
}

/// A parsed message head; `lines` are the raw header lines (CRLF
/// included) so that what is forwarded is what was received.
struct Head {
    first: String,
    lines: Vec<Vec<u8>>,
}

impl Head {
    fn parse(raw: &[u8]) -> io::Result<Head> {
        let mut lines = Vec::new();
        let mut rest = raw;
        while let Some(i) = find(rest, b"\r\n") {
            lines.push(rest[..i + 2].to_vec());
            rest = &rest[i + 2..];
        }
        // The last line is the empty one that ends the head.
        lines.pop();
        if lines.is_empty() {
            return Err(invalid("empty message head"));
        }
        let first = String::from_utf8_lossy(&lines.remove(0))
            .trim_end()
            .to_string();
        Ok(Head { first, lines })
    }

    fn name_of(line: &[u8]) -> Option<String> {
        let i = line.iter().position(|b| *b == b':')?;
        Some(
            String::from_utf8_lossy(&line[..i])
                .trim()
                .to_ascii_lowercase(),
        )
    }

    /// Every value of header `name`, comma lists split.
    fn values(&self, name: &str) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| Head::name_of(l).as_deref() == Some(name))
            .flat_map(|l| {
                let i = l.iter().position(|b| *b == b':').unwrap_or(0);
                String::from_utf8_lossy(&l[i + 1..])
                    .split(',')
                    .map(|v| v.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn has(&self, name: &str, token: &str) -> bool {
        self.values(name).iter().any(|v| v == token)
    }

    fn content_length(&self) -> io::Result<Option<usize>> {
        match self.values("content-length").first() {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| invalid("bad Content-Length")),
        }
    }

    /// The head as bytes, without the hop-by-hop connection headers, with
    /// `extra` lines added.
    fn render(&self, extra: &[String]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(self.first.as_bytes());
        out.extend_from_slice(b"\r\n");
        for l in &self.lines {
            let hop = matches!(
                Head::name_of(l).as_deref(),
                Some("connection" | "keep-alive" | "proxy-connection")
            );
            if !hop {
                out.extend_from_slice(l);
            }
        }
        for e in extra {
            out.extend_from_slice(e.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Serves one client connection: requests one after the other
/// (keep-alive) until the client closes it or a fault does.
async fn serve(state: &State, mut client: TcpStream) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut reader = Reader::new();
    loop {
        let Some(raw) = reader.head(&mut client).await? else {
            return Ok(());
        };
        let head = Head::parse(&raw)?;
        let mut parts = head.first.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("HTTP/1.1").to_string();
        let framing = if head.has("transfer-encoding", "chunked") {
            Framing::Chunked
        } else {
            match head.content_length()? {
                Some(0) | None => Framing::Empty,
                Some(n) => Framing::Length(n),
            }
        };
        if framing != Framing::Empty && head.has("expect", "100-continue") {
            client.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let body = reader.body(&mut client, framing).await?;
        let close_after = head.has("connection", "close") || version == "HTTP/1.0";
        state.counters.requests.fetch_add(1, Ordering::SeqCst);

        let action = state.decide(&method, &target);
        if action == Some(Action::Fail) {
            state.counters.failed.fetch_add(1, Ordering::SeqCst);
            state.record(ActionKind::Fail, &method, &target, None);
            client.write_all(&slow_down(&method, &target)).await?;
            if close_after {
                return Ok(());
            }
            continue;
        }
        if let Some(Action::Delay(pause)) = action {
            tokio::time::sleep(pause).await;
        }
        state.counters.forwarded.fetch_add(1, Ordering::SeqCst);
        let answer = tokio::time::timeout(
            UPSTREAM_TIMEOUT,
            forward(&state.upstream, &head, &body, &method),
        )
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
        let status = answer.as_ref().ok().map(|(s, _)| *s);
        match action {
            Some(Action::Delay(_)) => {
                state.counters.delayed.fetch_add(1, Ordering::SeqCst);
                state.record(ActionKind::Delay, &method, &target, status);
            }
            Some(Action::DropResponse) => {
                state.counters.dropped.fetch_add(1, Ordering::SeqCst);
                state.record(ActionKind::DropResponse, &method, &target, status);
                // The store has done the request; the client learns nothing.
                let _ = client.shutdown().await;
                return Ok(());
            }
            _ => {}
        }
        let response = match answer {
            Ok((_, response)) => response,
            Err(e) => {
                state
                    .counters
                    .upstream_errors
                    .fetch_add(1, Ordering::SeqCst);
                let _ = client.shutdown().await;
                return Err(e);
            }
        };
        client.write_all(&response).await?;
        if close_after {
            let _ = client.shutdown().await;
            return Ok(());
        }
    }
}

/// Sends one request to the store on a connection of its own and returns
/// its status and the response to give the client (framed for a
/// keep-alive connection).
async fn forward(
    upstream: &str,
    head: &Head,
    body: &[u8],
    method: &str,
) -> io::Result<(u16, Vec<u8>)> {
    let mut up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    let mut request = head.render(&["Connection: close".to_string()]);
    request.extend_from_slice(body);
    up.write_all(&request).await?;
    let mut reader = Reader::new();
    loop {
        let raw = reader
            .head(&mut up)
            .await?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let h = Head::parse(&raw)?;
        let status: u16 = h
            .first
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        if (100..200).contains(&status) {
            // Interim (100 Continue): the final answer follows.
            continue;
        }
        let framing = if method == "HEAD" || status == 204 || status == 304 {
            Framing::Empty
        } else if h.has("transfer-encoding", "chunked") {
            Framing::Chunked
        } else {
            match h.content_length()? {
                Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
                None => Framing::ToEof,
            }
        };
        let body = reader.body(&mut up, framing).await?;
        let extra = if framing == Framing::ToEof {
            vec![format!("Content-Length: {}", body.len())]
        } else {
            Vec::new()
        };
        let mut out = h.render(&extra);
        out.extend_from_slice(&body);
        return Ok((status, out));
    }
}

/// S3's answer to a request it throttles.
fn slow_down(method: &str, target: &str) -> Vec<u8> {
    let resource = target.split('?').next().unwrap_or("");
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
         <Message>Please reduce your request rate. (injected by the test fault proxy)</Message>\
         <Resource>{resource}</Resource><RequestId>fault-proxy</RequestId></Error>"
    );
    let mut out = format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_pick_by_method_path_and_share() {
        let rng = Mutex::new(SplitMix64(7));
        let state = State {
            upstream: String::new(),
            rules: Mutex::new(vec![
                Rule::drop_response()
                    .method(Method::Put)
                    .path("/_delta_log/")
                    .share(0.5),
                Rule::fail().method(Method::Put).share(1.0),
            ]),
            rng,
            counters: Counters::default(),
            events: Mutex::new(Vec::new()),
        };
        assert_eq!(state.decide("GET", "/b/t/_delta_log/0.json"), None);
        assert_eq!(state.decide("PUT", "/b/t/x.parquet"), Some(Action::Fail));
        let picks: Vec<_> = (0..1000)
            .map(|_| state.decide("PUT", "/b/t/_delta_log/0.json"))
            .collect();
        let dropped = picks
            .iter()
            .filter(|a| **a == Some(Action::DropResponse))
            .count();
        // The rest falls through to the second rule.
        assert!(picks.iter().all(Option::is_some));
        assert!((400..600).contains(&dropped), "{dropped}");
        *lock(&state.rules) = vec![Rule::fail().times(2)];
        let fired = (0..5)
            .filter(|_| state.decide("GET", "/").is_some())
            .count();
        assert_eq!(fired, 2);
    }

    /// A fake store that records each request it gets and answers it
    /// with a body delimited by the end of the connection.
    async fn fake_store() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = l.accept().await {
                let mut r = Reader::new();
                let Ok(Some(raw)) = r.head(&mut sock).await else {
                    continue;
                };
                let h = Head::parse(&raw).expect("head");
                let framing = if h.has("transfer-encoding", "chunked") {
                    Framing::Chunked
                } else {
                    Framing::Length(h.content_length().expect("cl").unwrap_or(0))
                };
                let body = r.body(&mut sock, framing).await.expect("body");
                let mut all = raw.clone();
                all.extend_from_slice(&body);
                lock(&s).push(all);
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstored")
                    .await;
            }
        });
        (format!("http://{addr}"), seen)
    }

    async fn response(r: &mut Reader, s: &mut TcpStream) -> (String, Vec<u8>) {
        let raw = r.head(s).await.expect("read").expect("a response");
        let h = Head::parse(&raw).expect("head");
        let n = h.content_length().expect("cl").expect("framed by length");
        (
            String::from_utf8_lossy(&raw).into_owned(),
            r.exact(s, n).await.expect("body"),
        )
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn forwards_byte_for_byte_keeps_the_client_alive_and_injects_faults() {
        let (store, seen) = fake_store().await;
        let proxy = FaultProxy::start(&store, 1).expect("proxy");
        let mut c = TcpStream::connect(proxy.addr).await.expect("connect");
        let mut r = Reader::new();
        // A chunked body, then a plain one, on one connection.
        let chunked = b"PUT /b/k?x=1 HTTP/1.1\r\nHost: signed.example:1\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n";
        c.write_all(chunked).await.expect("write");
        let (head, body) = response(&mut r, &mut c).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("connection"), "{head}");
        assert_eq!(body, b"stored");
        let plain =
            b"POST /b/k HTTP/1.1\r\nHost: signed.example:1\r\nContent-Length: 4\r\n\r\nwxyz";
        c.write_all(plain).await.expect("write");
        assert_eq!(response(&mut r, &mut c).await.1, b"stored");
        {
            let seen = lock(&seen);
            // Byte for byte, with only `Connection: close` added to the head.
            let at = find(chunked, b"\r\n\r\n").expect("end of head") + 2;
            let want = [&chunked[..at], b"Connection: close\r\n", &chunked[at..]].concat();
            assert_eq!(seen[0], want, "{}", String::from_utf8_lossy(&seen[0]));
            assert!(seen[1].ends_with(b"Content-Length: 4\r\nConnection: close\r\n\r\nwxyz"));
        }

        // Fail: answered here, never forwarded.
        proxy.set_rules(vec![Rule::fail().method(Method::Get)]);
        c.write_all(b"GET /b/k HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .expect("write");
        let (head, body) = response(&mut r, &mut c).await;
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("<Code>SlowDown</Code>"));
        assert_eq!(lock(&seen).len(), 2);

        // DropResponse: forwarded, then the connection closes unanswered.
        proxy.set_rules(vec![Rule::drop_response().path("/b/")]);
        c.write_all(b"PUT /b/k2 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nz")
            .await
            .expect("write");
        assert!(r.head(&mut c).await.expect("eof").is_none());
        assert_eq!(lock(&seen).len(), 3);

        // Delay: forwarded after the pause.
        proxy.set_rules(vec![Rule::delay(Duration::from_millis(300))]);
        let mut c = TcpStream::connect(proxy.addr).await.expect("connect");
        let mut r = Reader::new();
        let t = std::time::Instant::now();
        c.write_all(b"HEAD /b/k HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .expect("write");
        let raw = r.head(&mut c).await.expect("read").expect("response");
        assert!(raw.starts_with(b"HTTP/1.1 200"));
        assert!(t.elapsed() >= Duration::from_millis(300));

        let n = proxy.counts();
        assert_eq!(
            (n.requests, n.forwarded, n.failed, n.dropped, n.delayed),
            (5, 4, 1, 1, 1),
            "{n:?}"
        );
        let events = proxy.events();
        assert_eq!(events[1].action, ActionKind::DropResponse);
        assert_eq!(events[1].upstream_status, Some(200));
    }

    #[test]
    fn heads_keep_their_lines_and_lose_only_connection_headers() {
        let raw = b"PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1:9\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nx-amz-date: 1\r\n\r\n";
        let h = Head::parse(raw).expect("parse");
        assert!(h.has("transfer-encoding", "chunked"));
        assert!(h.has("connection", "keep-alive"));
        let out = h.render(&["Connection: close".into()]);
        assert_eq!(
            out,
            b"PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1:9\r\nTransfer-Encoding: chunked\r\nx-amz-date: 1\r\nConnection: close\r\n\r\n"
        );
    }
}
