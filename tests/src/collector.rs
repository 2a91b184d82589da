//! A Jaeger collector endpoint for the tests: HTTP/1.1 on 127.0.0.1 taking `POST /api/traces`
//! (binary-protocol `Batch`), recording and decoding every request, answering with a status the
//! test chooses, and able to go down (closing every connection) and come back on the same port.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tracer_daemon::jaeger::Protocol;
use tracer_daemon::jaeger::decode::{ReceivedBatch, decode_batch};
use tracer_daemon::model::JaegerSpan as Span;

/// Largest request body taken, bytes.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One request the collector received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body decoded as a binary-protocol `jaeger.Batch`, or why it is not one.
    pub batch: Result<ReceivedBatch, String>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// Status answered to the next requests (202 unless set).
    status: AtomicU16,
    stopping: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The collector; stops (closing its connections) when dropped.
pub struct Collector {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Collector {
    /// Listens on an ephemeral port of 127.0.0.1.
    pub fn start() -> Collector {
        Collector::start_on(0).expect("binding the test collector")
    }

    /// Listens on `port` of 127.0.0.1 (0: any).
    pub fn start_on(port: u16) -> io::Result<Collector> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { status: AtomicU16::new(202), ..Default::default() });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                if let Ok(clone) = conn.try_clone() {
                    lock(&s.conns).push(clone);
                }
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        Ok(Collector { addr, shared, accept: Some(accept) })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answer the following requests with `status`.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// Every span of every decoded batch, in arrival order.
    pub fn spans(&self) -> Vec<Span> {
        lock(&self.shared.received)
            .iter()
            .filter_map(|r| r.batch.as_ref().ok())
            .flat_map(|b| b.spans.iter().cloned())
            .collect()
    }

    pub fn span_count(&self) -> usize {
        lock(&self.shared.received).iter().filter_map(|r| r.batch.as_ref().ok()).map(|b| b.spans.len()).sum()
    }

    /// Stops listening and closes every connection: the port refuses until a new collector
    /// starts on it.
    pub fn stop(&mut self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in lock(&self.shared.conns).drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves one connection: requests until the peer closes or the collector stops.
fn serve(conn: TcpStream, s: &Shared) {
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut out = write_half;
    let mut reader = BufReader::new(conn);
    loop {
        if s.stopping.load(Ordering::SeqCst) {
            return;
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let len: usize =
            headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        if len > MAX_BODY {
            let _ = out.write_all(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if s.stopping.load(Ordering::SeqCst) {
            return;
        }
        let status = s.status.load(Ordering::SeqCst);
        let (status, batch) = if method != "POST" || path != "/api/traces" {
            (404, Err(format!("{method} {path}")))
        } else {
            let batch = decode_batch(Protocol::Binary, &body).map_err(|e| e.to_string());
            (if batch.is_err() { 400 } else { status }, batch)
        };
        // Only accepted batches count as received.
        if (200..300).contains(&status) {
            lock(&s.received).push(Received { method, path, headers, body, batch });
        }
        let resp = format!("HTTP/1.1 {status} Status\r\nContent-Length: 0\r\n\r\n");
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
