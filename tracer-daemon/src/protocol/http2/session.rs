//! An HTTP/2 connection's session: reads frames in both directions (skipping by length what the
//! capture did not keep), decodes header blocks per direction, and makes one [`Exchange`] per
//! client stream, from the request's first HEADERS to the end of the response (trailers
//! included), keyed by the stream id rather than by arrival order.

use crate::model::hash::FastMap;

use super::frame::{self, Head, PREFACE, Run};
use super::hpack::{Decoder, Field};
use crate::model::Attributes;
use crate::model::attrs::{GRPC_CODES, Grpc, Http2};
use crate::protocol::{
    At, Exchange, MAX_TAG_LEN, ParseDrop, Protocol, Redaction, Role, SessionCounters, Side, Started, TraceContext,
    bounded_str, context, redact::redact_query, truncate,
};

/// Most streams open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS is usually
/// 100 to 1000).
pub const MAX_STREAMS: usize = 1024;
/// Most payload bytes kept of one non-DATA frame; beyond, it is treated as cut.
const MAX_FRAME_KEEP: usize = 64 * 1024;
/// Most bytes of one header block (HEADERS + CONTINUATION) kept.
const MAX_BLOCK: usize = 64 * 1024;

/// Length-prefixed gRPC messages in one direction of a stream.
#[derive(Debug, Default)]
struct Messages {
    count: u32,
    prefix: [u8; 5],
    have: u8,
    /// Message bytes still to come.
    body_left: u64,
    /// A message prefix fell in bytes the capture did not keep: the count is unknown.
    lost: bool,
}

impl Messages {
    fn bytes(&mut self, mut b: &[u8]) {
        while !b.is_empty() && !self.lost {
            if self.body_left > 0 {
                let n = self.body_left.min(b.len() as u64);
                self.body_left -= n;
                b = &b[n as usize..];
                continue;
            }
            self.prefix[self.have as usize] = b[0];
            self.have += 1;
            b = &b[1..];
            if self.have == 5 {
                self.have = 0;
                self.count += 1;
                let p = self.prefix;
                self.body_left = u64::from(u32::from_be_bytes([p[1], p[2], p[3], p[4]]));
            }
        }
    }

    fn gap(&mut self, n: u64) {
        if self.body_left >= n && self.have == 0 {
            self.body_left -= n;
        } else {
            self.lost = true;
        }
    }

    fn value(&self) -> Option<u32> {
        (!self.lost).then_some(self.count)
    }
}

/// One client stream in flight.
#[derive(Debug, Default)]
struct H2Stream {
    /// CLOCK_MONOTONIC ns: entry of the call carrying the first HEADERS frame's first byte.
    start_ns: u64,
    method: Option<String>,
    /// Raw `:path` (redacted when rendered into attributes).
    path: Option<String>,
    authority: Option<String>,
    grpc_request: bool,
    status: Option<u16>,
    grpc_status: Option<i64>,
    grpc_message: Option<String>,
    incomplete: bool,
    context: Option<TraceContext>,
    requests: Messages,
    responses: Messages,
    /// The response's first HEADERS was seen.
    responded: bool,
    /// The request's number when it is not the stream id's (an HTTP/1.1 request upgraded).
    seq: Option<u64>,
}

/// The frame being read in one direction.
#[derive(Debug)]
struct Frame {
    head: Head,
    /// Payload bytes still to come (captured or not).
    left: u32,
    /// Kept payload (non-DATA frames whose contents matter).
    buf: Vec<u8>,
    /// Some payload bytes were not captured (or not kept).
    cut: bool,
    /// DATA: payload bytes before the data (pad length byte) still to come, then the data
    /// length; None until the pad length is known.
    data_left: Option<u32>,
    /// DATA: the pad-length byte is still to come.
    need_pad: bool,
}

/// A header block being collected (HEADERS or PUSH_PROMISE, then CONTINUATIONs).
#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    push: bool,
    data: Vec<u8>,
    cut: bool,
    start: u64,
    at: Option<At>,
}

/// One direction of the connection.
#[derive(Debug)]
struct Dir {
    /// Preface bytes matched (request direction); `PREFACE.len()` once passed or absent.
    preface: usize,
    /// No frame header seen yet in this direction.
    fresh: bool,
    hdr: [u8; 9],
    hdr_len: usize,
    /// Where the frame header being read began.
    hdr_enter: u64,
    hdr_at: Option<At>,
    frame: Option<Frame>,
    frame_enter: u64,
    frame_at: Option<At>,
    block: Option<Block>,
    hpack: Decoder,
    /// Framing was lost: calls are dropped until one starts with a plausible frame run.
    lost: bool,
}

impl Dir {
    fn new(request: bool) -> Dir {
        Dir {
            preface: if request { 0 } else { PREFACE.len() },
            fresh: true,
            hdr: [0; 9],
            hdr_len: 0,
            hdr_enter: 0,
            hdr_at: None,
            frame: None,
            frame_enter: 0,
            frame_at: None,
            block: None,
            hpack: Decoder::mid_stream(),
            lost: false,
        }
    }

    fn lose(&mut self) {
        self.hdr_len = 0;
        self.frame = None;
        self.block = None;
        self.hpack.lose();
        self.lost = true;
    }
}

/// The HTTP/2 state of one TCP connection.
pub struct Session {
    role: Role,
    redaction: Redaction,
    /// 0: client → server, 1: server → client.
    dirs: [Dir; 2],
    streams: FastMap<u32, H2Stream>,
    /// The highest client stream id opened.
    last_stream: u32,
    started: Vec<Started>,
    stopped: bool,
    counters: SessionCounters,
    /// Added to stream ids to number requests: the HTTP/1.1 requests of an upgraded connection
    /// came first.
    seq_base: u64,
    /// Request numbers may differ from the other end's (carried from before an upgrade).
    drifted: bool,
}

/// An HTTP/1.1 request answered on stream 1 after its connection switched to HTTP/2.
#[derive(Debug)]
pub struct Upgraded {
    pub seq: u64,
    pub start_ns: u64,
    pub attrs: Attributes,
    pub context: Option<TraceContext>,
}

fn index(side: Side) -> usize {
    match side {
        Side::Request => 0,
        Side::Response => 1,
    }
}

/// A finished header block's fields, read for what spans need.
#[derive(Default)]
struct Headers {
    method: Option<String>,
    path: Option<String>,
    authority: Option<String>,
    status: Option<u16>,
    content_type: Option<String>,
    grpc_status: Option<i64>,
    grpc_message: Option<String>,
    context: Option<TraceContext>,
    incomplete: bool,
}

fn read_headers(fields: &[Field], cut: bool) -> Headers {
    let mut h = Headers { incomplete: cut, ..Headers::default() };
    for f in fields {
        let Field::Header { name, value } = f else {
            h.incomplete = true;
            continue;
        };
        let text = || bounded_str(value, MAX_TAG_LEN);
        match name.as_slice() {
            b":method" => h.method = Some(bounded_str(value, 32)),
            b":path" => h.path = Some(text()),
            b":authority" => h.authority = Some(bounded_str(value, 256)),
            b":status" => h.status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()),
            b"content-type" => h.content_type = Some(bounded_str(value, 128)),
            b"grpc-status" => h.grpc_status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()),
            b"grpc-message" => h.grpc_message = Some(percent_decode(value)),
            b"traceparent" => h.context = h.context.or_else(|| context::parse_traceparent(value)),
            b"uber-trace-id" => h.context = h.context.or_else(|| context::parse_uber_trace_id(value)),
            _ => {}
        }
    }
    h
}

/// gRPC's percent-encoding of `grpc-message`.
fn percent_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && let Some(h) = v.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    bounded_str(&out, MAX_TAG_LEN)
}

/// RST_STREAM / GOAWAY error code names (RFC 9113 7).
fn error_name(code: u32) -> String {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES.get(code as usize).map_or_else(|| format!("0x{code:x}"), |n| (*n).to_string())
}

impl Session {
    pub fn new(role: Role, redaction: Redaction, counters: SessionCounters) -> Self {
        Session {
            role,
            redaction,
            dirs: [Dir::new(true), Dir::new(false)],
            streams: FastMap::default(),
            last_stream: 0,
            started: Vec::new(),
            stopped: false,
            counters,
            seq_base: 0,
            drifted: false,
        }
    }

    /// The session of a connection that switched from HTTP/1.1 (`Upgrade: h2c`) after
    /// `seq_base` requests: `request`, the last of them, waits for its response on stream 1.
    /// The client's bytes begin with the preface; the server's with its SETTINGS.
    pub fn upgraded(
        role: Role,
        redaction: Redaction,
        counters: SessionCounters,
        request: Option<Upgraded>,
        seq_base: u64,
        drifted: bool,
    ) -> Self {
        let mut s = Session::new(role, redaction, counters);
        s.seq_base = seq_base;
        s.drifted = drifted;
        s.last_stream = 1;
        if let Some(r) = request {
            let (method, path, authority) = match r.attrs {
                Attributes::Http(h) => (Some(h.method), Some(h.target), h.host),
                _ => (None, None, None),
            };
            s.streams.insert(
                1,
                H2Stream {
                    start_ns: r.start_ns,
                    method,
                    path,
                    authority,
                    context: r.context,
                    seq: Some(r.seq),
                    ..H2Stream::default()
                },
            );
        }
        s
    }

    /// Requests the session before the upgrade had parsed and not yet reported.
    pub fn carry_started(&mut self, started: impl Iterator<Item = Started>) {
        self.started.extend(started);
    }

    /// Bytes captured before the switch and still unparsed. Where they sat in their calls is
    /// not known, so requests that begin in them carry no position.
    pub fn feed_leftover(
        &mut self,
        side: Side,
        data: &[u8],
        gap: usize,
        enter: u64,
        exit: u64,
        out: &mut Vec<Exchange>,
    ) {
        let before = self.started.len();
        self.feed(side, data, data.len() + gap, enter, exit, out);
        for s in &mut self.started[before..] {
            s.at = None;
        }
    }

    /// Whether request numbers may differ from the other end's.
    pub fn drifted(&self) -> bool {
        self.drifted
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    pub fn take_started(&mut self) -> std::vec::Drain<'_, Started> {
        self.started.drain(..)
    }

    /// Streams waiting for the end of their response.
    /// An estimate of the heap bytes held (the session and its open streams).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Session>() + self.streams.capacity() * (std::mem::size_of::<(u32, H2Stream)>() + 1)
    }

    pub fn pending(&self) -> usize {
        self.streams.len()
    }

    /// One captured call: `data` is what was captured, `total` what the call moved.
    pub fn feed(&mut self, side: Side, data: &[u8], total: usize, enter: u64, exit: u64, out: &mut Vec<Exchange>) {
        if self.stopped {
            return;
        }
        let i = index(side);
        let d = &mut self.dirs[i];
        if d.lost {
            match frame::run(data, total) {
                Run::Plausible { frames, .. } if frames > 0 => d.lost = false,
                _ => {
                    self.counters.drop(ParseDrop::Unframed);
                    return;
                }
            }
        }
        let mut pos = 0;
        while pos < data.len() && !self.dirs[i].lost {
            pos += self.step(side, &data[pos..], pos as u64, enter, exit, out);
        }
        let gap = total.saturating_sub(data.len()) as u64;
        if gap > 0 && !self.dirs[i].lost {
            self.gap(side, gap, exit, out);
        }
    }

    /// Consumes some of `b` (never none), which begins `off` bytes into its call.
    fn step(&mut self, side: Side, b: &[u8], off: u64, enter: u64, exit: u64, out: &mut Vec<Exchange>) -> usize {
        let i = index(side);
        let d = &mut self.dirs[i];
        if d.preface < PREFACE.len() {
            let n = (PREFACE.len() - d.preface).min(b.len());
            if b[..n] == PREFACE[d.preface..d.preface + n] {
                d.preface += n;
                if d.preface == PREFACE.len() {
                    // Seen from its first byte: the header table starts empty and known.
                    d.hpack = Decoder::new();
                }
                return n;
            }
            d.preface = PREFACE.len();
        }
        let Some(f) = d.frame.as_mut() else {
            if d.hdr_len == 0 {
                d.hdr_enter = enter;
                d.hdr_at = Some(At { call: enter, offset: off });
            }
            let n = (9 - d.hdr_len).min(b.len());
            d.hdr[d.hdr_len..d.hdr_len + n].copy_from_slice(&b[..n]);
            d.hdr_len += n;
            if d.hdr_len == 9 {
                d.hdr_len = 0;
                let head = Head::parse(&d.hdr);
                if d.fresh && side == Side::Response && head.kind == frame::SETTINGS && head.flags & frame::ACK == 0 {
                    // A server's first frame: the direction is seen from its start.
                    d.hpack = Decoder::new();
                }
                d.fresh = false;
                d.frame_enter = d.hdr_enter;
                d.frame_at = d.hdr_at.take();
                d.frame = Some(Frame {
                    head,
                    left: head.len,
                    buf: Vec::new(),
                    cut: false,
                    data_left: if head.flags & frame::PADDED == 0 { Some(head.len) } else { None },
                    need_pad: head.flags & frame::PADDED != 0,
                });
                if head.len == 0 {
                    self.frame_done(side, exit, out);
                }
            }
            return n;
        };
        let n = (f.left as usize).min(b.len());
        let chunk = &b[..n];
        f.left -= n as u32;
        if f.head.kind == frame::DATA {
            let mut rest = chunk;
            if f.need_pad && !rest.is_empty() {
                f.need_pad = false;
                let pad = u32::from(rest[0]);
                f.data_left = Some(f.head.len.saturating_sub(1 + pad));
                rest = &rest[1..];
            }
            let take = (f.data_left.unwrap_or(0) as usize).min(rest.len());
            if let Some(l) = f.data_left.as_mut() {
                *l -= take as u32;
            }
            let stream = f.head.stream;
            if take > 0
                && let Some(s) = self.streams.get_mut(&stream)
            {
                let m = if side == Side::Request { &mut s.requests } else { &mut s.responses };
                m.bytes(&rest[..take]);
            }
        } else if keeps_payload(f.head.kind) {
            let room = MAX_FRAME_KEEP.saturating_sub(f.buf.len());
            f.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() > room {
                f.cut = true;
            }
        }
        if self.dirs[i].frame.as_ref().is_some_and(|f| f.left == 0) {
            self.frame_done(side, exit, out);
        }
        n.max(1)
    }

    /// `n` bytes the call moved beyond its capture.
    fn gap(&mut self, side: Side, n: u64, exit: u64, out: &mut Vec<Exchange>) {
        let i = index(side);
        let d = &mut self.dirs[i];
        let Some(f) = d.frame.as_mut() else {
            // The gap holds frame headers: framing is lost.
            self.lose(side);
            return;
        };
        let m = u64::from(f.left).min(n);
        f.left -= m as u32;
        if f.head.kind == frame::DATA {
            if f.need_pad {
                // The pad length was not captured: the data's extent is unknown.
                f.data_left = None;
            }
            let data = f.data_left.map_or(m, |l| u64::from(l).min(m));
            if let Some(l) = f.data_left.as_mut() {
                *l -= data as u32;
            }
            let stream = f.head.stream;
            let unknown_extent = f.data_left.is_none();
            if let Some(s) = self.streams.get_mut(&stream) {
                let msgs = if side == Side::Request { &mut s.requests } else { &mut s.responses };
                if unknown_extent {
                    msgs.lost = true;
                } else if data > 0 {
                    msgs.gap(data);
                }
            }
        } else if m > 0 {
            f.cut = true;
        }
        if f.left == 0 {
            self.frame_done(side, exit, out);
        }
        if n > m {
            self.lose(side);
        }
    }

    fn lose(&mut self, side: Side) {
        self.dirs[index(side)].lose();
        self.counters.resyncs.inc();
    }

    /// Calls of `side` were lost in the kernel: that direction's framing and header table are
    /// gone until a call starts with a plausible run of frames.
    pub fn lost_calls(&mut self, side: Side) {
        if !self.dirs[index(side)].lost {
            self.lose(side);
        }
    }

    /// The frame being read in `side` is complete (its last byte came with the call that
    /// exits at `exit`).
    fn frame_done(&mut self, side: Side, exit: u64, out: &mut Vec<Exchange>) {
        let d = &mut self.dirs[index(side)];
        let Some(f) = d.frame.take() else { return };
        let (start, at) = (d.frame_enter, d.frame_at);
        let h = f.head;
        // A header block must continue with CONTINUATION frames only.
        if d.block.is_some() && h.kind != frame::CONTINUATION {
            d.block = None;
            d.hpack.lose();
        }
        match h.kind {
            frame::DATA if h.flags & frame::END_STREAM != 0 => self.end_of_side(side, h.stream, exit, out),
            frame::HEADERS | frame::PUSH_PROMISE => {
                let push = h.kind == frame::PUSH_PROMISE;
                let mut p: &[u8] = &f.buf;
                let mut pad = 0usize;
                if h.flags & frame::PADDED != 0 {
                    pad = p.first().map_or(0, |&b| usize::from(b));
                    p = p.get(1..).unwrap_or(&[]);
                }
                let skip = if push {
                    4
                } else if h.flags & frame::PRIORITY_FLAG != 0 {
                    5
                } else {
                    0
                };
                p = p.get(skip..).unwrap_or(&[]);
                let cut = f.cut || f.buf.len() < h.len as usize;
                // Padding is at the end of the payload: strip it when the payload is whole.
                let frag = if cut { p } else { &p[..p.len().saturating_sub(pad)] };
                let end_stream = !push && h.flags & frame::END_STREAM != 0;
                d.block = Some(Block { stream: h.stream, end_stream, push, data: frag.to_vec(), cut, start, at });
                if h.flags & frame::END_HEADERS != 0 {
                    self.block_done(side, exit, out);
                }
            }
            frame::CONTINUATION => {
                let Some(b) = d.block.as_mut().filter(|b| b.stream == h.stream) else {
                    d.block = None;
                    d.hpack.lose();
                    return;
                };
                let room = MAX_BLOCK.saturating_sub(b.data.len());
                b.data.extend_from_slice(&f.buf[..f.buf.len().min(room)]);
                b.cut |= f.cut || f.buf.len() > room || f.buf.len() < h.len as usize;
                if h.flags & frame::END_HEADERS != 0 {
                    self.block_done(side, exit, out);
                }
            }
            frame::RST_STREAM if f.buf.len() == 4 => {
                let code = u32::from_be_bytes([f.buf[0], f.buf[1], f.buf[2], f.buf[3]]);
                let by = if side == Side::Request { "client" } else { "server" };
                let error = format!("stream reset by {by}: {}", error_name(code));
                if let Some(s) = self.streams.remove(&h.stream) {
                    out.push(self.exchange(h.stream, s, exit, Some(error)));
                }
            }
            frame::GOAWAY if side == Side::Response && f.buf.len() >= 8 => {
                let last = u32::from_be_bytes([f.buf[0], f.buf[1], f.buf[2], f.buf[3]]) & 0x7fff_ffff;
                let code = u32::from_be_bytes([f.buf[4], f.buf[5], f.buf[6], f.buf[7]]);
                let mut gone: Vec<u32> = self.streams.keys().copied().filter(|&id| id > last).collect();
                gone.sort_unstable();
                for id in gone {
                    if let Some(s) = self.streams.remove(&id) {
                        let error = format!("GOAWAY ({}) before response", error_name(code));
                        out.push(self.exchange(id, s, exit, Some(error)));
                    }
                }
            }
            // SETTINGS, PING, WINDOW_UPDATE, PRIORITY and unknown types make no spans.
            _ => {}
        }
    }

    /// A header block is complete: decode it and apply it to its stream.
    fn block_done(&mut self, side: Side, exit: u64, out: &mut Vec<Exchange>) {
        let d = &mut self.dirs[index(side)];
        let Some(b) = d.block.take() else { return };
        let mut fields = Vec::new();
        let mut cut = b.cut;
        if b.cut {
            d.hpack.decode_prefix(&b.data, &mut fields);
        } else if d.hpack.decode(&b.data, &mut fields).is_err() {
            cut = true;
        }
        if b.push {
            return;
        }
        let hs = read_headers(&fields, cut);
        match side {
            Side::Request => self.request_headers(b, hs),
            Side::Response => self.response_headers(b, hs, exit, out),
        }
    }

    fn request_headers(&mut self, b: Block, hs: Headers) {
        if let Some(s) = self.streams.get_mut(&b.stream) {
            // Trailers of the request.
            s.incomplete |= hs.incomplete;
            return;
        }
        // Client streams are odd and only ever increase (RFC 9113 5.1.1): a lower or reused id
        // is a protocol error, and would name two calls with one id at the stitcher.
        if b.stream.is_multiple_of(2) || b.stream <= self.last_stream {
            return;
        }
        self.last_stream = b.stream;
        if self.streams.len() >= MAX_STREAMS {
            self.counters.drop(ParseDrop::PendingFull);
            return;
        }
        let grpc_request = hs.content_type.as_deref().is_some_and(|c| c.starts_with("application/grpc"));
        let seq = self.seq_base + u64::from(b.stream);
        self.started.push(Started { seq, start_ns: b.start, context: hs.context, at: b.at });
        self.streams.insert(
            b.stream,
            H2Stream {
                start_ns: b.start,
                method: hs.method,
                path: hs.path,
                authority: hs.authority,
                grpc_request,
                incomplete: hs.incomplete,
                context: hs.context,
                ..H2Stream::default()
            },
        );
    }

    fn response_headers(&mut self, b: Block, hs: Headers, exit: u64, out: &mut Vec<Exchange>) {
        let Some(s) = self.streams.get_mut(&b.stream) else {
            self.counters.drop(ParseDrop::OrphanResponse);
            return;
        };
        s.incomplete |= hs.incomplete;
        if !s.responded {
            s.responded = true;
            s.status = hs.status;
        }
        if hs.grpc_status.is_some() {
            s.grpc_status = hs.grpc_status;
            s.grpc_message = hs.grpc_message;
        }
        if hs.content_type.as_deref().is_some_and(|c| c.starts_with("application/grpc")) {
            s.grpc_request = true;
        }
        if b.end_stream {
            self.end_of_side(Side::Response, b.stream, exit, out);
        }
    }

    /// END_STREAM in `side`: the response's end completes the stream.
    fn end_of_side(&mut self, side: Side, id: u32, exit: u64, out: &mut Vec<Exchange>) {
        if side == Side::Response
            && let Some(s) = self.streams.remove(&id)
        {
            out.push(self.exchange(id, s, exit, None));
        }
    }

    fn exchange(&self, id: u32, s: H2Stream, end: u64, reset: Option<String>) -> Exchange {
        let grpc = (s.grpc_request || s.grpc_status.is_some()).then(|| {
            let (service, method) =
                match s.path.as_deref().and_then(|p| p.strip_prefix('/')).and_then(|p| p.split_once('/')) {
                    Some((svc, m)) if !svc.is_empty() && !m.is_empty() => (Some(svc.to_string()), Some(m.to_string())),
                    _ => (None, None),
                };
            let failed = s.grpc_status.is_some_and(|c| c != 0);
            Grpc {
                service,
                method,
                status_code: s.grpc_status,
                message: if failed { s.grpc_message.clone() } else { None },
                request_messages: s.requests.value(),
                response_messages: s.responses.value(),
            }
        });
        let error = reset.or_else(|| match &grpc {
            Some(g) => g.status_code.filter(|&c| c != 0).map(|c| {
                let name = usize::try_from(c).ok().and_then(|c| GRPC_CODES.get(c)).copied().unwrap_or("UNKNOWN");
                match &g.message {
                    Some(m) if !m.is_empty() => format!("{name}: {m}"),
                    _ => name.to_string(),
                }
            }),
            None => s
                .status
                .filter(|&st| st >= 500 || (st >= 400 && self.role == Role::Client))
                .map(|st| format!("HTTP {st}")),
        });
        let operation = match (&grpc, &s.path, &s.method) {
            (Some(_), Some(path), _) => truncate(path.split('?').next().unwrap_or_default().to_string(), 256),
            (Some(_), None, _) => "grpc".to_string(),
            (None, Some(path), Some(m)) => truncate(format!("{m} {}", path.split('?').next().unwrap_or_default()), 256),
            (None, _, Some(m)) => format!("HTTP/2 {m}"),
            (None, _, None) => "HTTP/2".to_string(),
        };
        if s.incomplete {
            self.counters.headers_incomplete.inc();
        }
        let path = s.path.map(|p| truncate(if self.redaction.enabled { redact_query(&p) } else { p }, MAX_TAG_LEN));
        Exchange {
            protocol: Protocol::Http2,
            seq: s.seq.unwrap_or(self.seq_base + u64::from(id)),
            start_ns: s.start_ns,
            end_ns: end.max(s.start_ns),
            operation,
            attrs: Attributes::Http2(Http2 {
                stream_id: id,
                method: s.method,
                path,
                authority: s.authority,
                status_code: s.status,
                headers_incomplete: s.incomplete,
                grpc,
            }),
            truncated: false,
            error,
            context: s.context,
        }
    }

    /// The connection ended: streams still open end with an error, in stream order.
    pub fn close(&mut self, ts_ns: u64, reset: bool, out: &mut Vec<Exchange>) {
        let mut ids: Vec<u32> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        let error = if reset { "connection reset before response" } else { "connection closed before response" };
        for id in ids {
            if let Some(s) = self.streams.remove(&id) {
                out.push(self.exchange(id, s, ts_ns, Some(error.to_string())));
            }
        }
        self.stopped = true;
    }
}

/// Frame types whose payload the session reads.
fn keeps_payload(kind: u8) -> bool {
    matches!(kind, frame::HEADERS | frame::PUSH_PROMISE | frame::CONTINUATION | frame::RST_STREAM | frame::GOAWAY)
}
