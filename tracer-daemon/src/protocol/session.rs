//! A connection's protocol session: drives one protocol machine over both directions, passes
//! over bodies and capture gaps, resynchronises after lost framing, and pairs requests with
//! responses (FIFO) into [`Exchange`]s with the calls' timestamps.

use std::collections::VecDeque;

use crate::metrics::{Counter, Registry};

use super::stream::{Stream, UNTIL_CLOSE};
use super::{
    At, Ctx, Direction, Event, Exchange, GapOutcome, Progress, Protocol, Redaction, Request, Response, Role, Side,
    http, http2, mysql, redis,
};

/// Most requests waiting for a response on one connection.
pub const MAX_PENDING: usize = 1024;

/// What sessions could not parse or pair, counted where it happens. Sessions of the daemon
/// share one set; a session made with [`Session::new`] has its own.
#[derive(Clone, Debug)]
pub struct SessionCounters {
    pub resyncs: Counter,
    /// HTTP/2 streams made into spans with some header the decoder could not resolve.
    pub headers_incomplete: Counter,
    /// Drops by [`ParseDrop`], indexed by `ParseDrop as usize`.
    pub dropped: [Counter; ParseDrop::ALL.len()],
}

/// Why a session gave up captured bytes or a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseDrop {
    /// A call dropped while waiting for a plausible message start.
    Unframed,
    /// A request not queued because `MAX_PENDING` were already waiting.
    PendingFull,
    /// A response with no pending request.
    OrphanResponse,
}

impl ParseDrop {
    pub const ALL: [ParseDrop; 3] = [ParseDrop::Unframed, ParseDrop::PendingFull, ParseDrop::OrphanResponse];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ParseDrop::Unframed => "unframed_call",
            ParseDrop::PendingFull => "pending_full",
            ParseDrop::OrphanResponse => "orphan_response",
        }
    }
}

impl SessionCounters {
    /// Counters registered nowhere (tests, fuzzing, one-off sessions).
    pub fn detached() -> Self {
        SessionCounters {
            resyncs: Counter::detached(),
            headers_incomplete: Counter::detached(),
            dropped: ParseDrop::ALL.map(|_| Counter::detached()),
        }
    }

    /// `tracer_protocol_resyncs_total` and `tracer_protocol_dropped_total{reason}`.
    pub fn register(reg: &Registry) -> Self {
        SessionCounters {
            resyncs: reg.counter(
                "tracer_protocol_resyncs_total",
                "Times a protocol session lost framing (capture gap in a header, garbage, oversize header) and resynchronised",
                &[],
            ),
            headers_incomplete: reg.counter(
                "tracer_protocol_http2_headers_incomplete_total",
                "HTTP/2 streams whose span lacks headers HPACK could not decode (connection joined after its start, or a header block not captured)",
                &[],
            ),
            dropped: ParseDrop::ALL.map(|r| {
                reg.counter(
                    "tracer_protocol_dropped_total",
                    "Captured calls or messages protocol sessions gave up, by reason",
                    &[("reason", r.as_str())],
                )
            }),
        }
    }

    pub(crate) fn drop(&self, reason: ParseDrop) {
        self.dropped[reason as usize].inc();
    }
}

/// A snapshot of a session's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Times framing was lost (capture gap in a header, garbage, oversize header).
    pub resyncs: u64,
    /// Calls dropped while waiting for a plausible message start.
    pub dropped_calls: u64,
    /// Responses with no pending request.
    pub orphan_responses: u64,
    /// Requests not queued because `MAX_PENDING` were already waiting.
    pub dropped_requests: u64,
    /// HTTP/2 spans with headers that could not be decoded.
    pub headers_incomplete: u64,
}

struct Pending {
    seq: u64,
    start_ns: u64,
    req: Request,
}

enum Machine {
    Http(http::Machine),
    Redis(redis::Machine),
    Mysql(mysql::Machine),
}

impl Machine {
    fn decode(&mut self, side: Side, buf: &[u8], head: Option<&Request>, ctx: &Ctx) -> Progress {
        match self {
            Machine::Http(m) => m.decode(side, buf, head, ctx),
            Machine::Redis(m) => m.decode(side, buf, head, ctx),
            Machine::Mysql(m) => m.decode(side, buf, head, ctx),
        }
    }

    fn on_gap(&mut self, side: Side, buf: &[u8], head: Option<&Request>, ctx: &Ctx) -> GapOutcome {
        match self {
            Machine::Http(m) => m.on_gap(side, buf, head, ctx),
            Machine::Redis(m) => m.on_gap(side, buf, head, ctx),
            Machine::Mysql(m) => m.on_gap(side, buf, head, ctx),
        }
    }

    fn resync(&mut self, side: Side, data: &[u8]) -> bool {
        match self {
            Machine::Http(m) => m.resync(side, data),
            Machine::Redis(m) => m.resync(side, data),
            Machine::Mysql(m) => m.resync(side, data),
        }
    }
}

/// The protocol state of one TCP connection, fed with its captured calls in order: HTTP/2
/// pairs by stream id, every other protocol in FIFO order.
pub struct Session(Kind);

enum Kind {
    Fifo(Box<Fifo>),
    Http2(Box<http2::session::Session>),
}

/// A session that pairs requests and responses in order.
struct Fifo {
    protocol: Protocol,
    ctx: Ctx,
    machine: Machine,
    /// Index 0: the request direction; 1: the response direction.
    streams: [Stream; 2],
    pending: VecDeque<Pending>,
    next_seq: u64,
    /// `next_seq` when the response stream lost its framing: it resyncs only on a response to
    /// a later request, and the requests before answer nothing that can still be paired.
    response_lost_at: Option<u64>,
    stopped: bool,
    /// The request count may differ from the other end's: requests were skipped (request
    /// framing lost) or a response came with no request (a lost request event).
    drifted: bool,
    stats: SessionCounters,
    /// Requests parsed since the last `take_started`.
    started: Vec<Started>,
    /// The connection switched to HTTP/2: what the HTTP/2 session starts from.
    upgrade: Option<Upgrade>,
}

/// A switch to HTTP/2 (`101` with `Upgrade: h2c`).
struct Upgrade {
    /// The request answered on stream 1, when it was still pending.
    request: Option<Pending>,
    /// Request bytes buffered at the switch, and the exit of the call that brought the last.
    requests: (Vec<u8>, u64),
    /// Response bytes after the `101`: the rest of the call that carried it.
    responses: Vec<u8>,
}

/// A request whose message has been parsed: its span can get ids before the response comes.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    pub seq: u64,
    /// CLOCK_MONOTONIC ns of the call carrying the request's first byte.
    pub start_ns: u64,
    pub context: Option<super::TraceContext>,
    /// Where the request's first byte was (unknown when it was never buffered: a message cut
    /// before its start was seen).
    pub at: Option<At>,
}

fn index(side: Side) -> usize {
    match side {
        Side::Request => 0,
        Side::Response => 1,
    }
}

impl Session {
    pub fn new(protocol: Protocol, role: Role, redaction: Redaction) -> Self {
        Self::with_counters(protocol, role, redaction, SessionCounters::detached())
    }

    /// A session that counts into `counters`.
    pub fn with_counters(protocol: Protocol, role: Role, redaction: Redaction, counters: SessionCounters) -> Self {
        let machine = match protocol {
            Protocol::Http => Machine::Http(http::Machine::default()),
            Protocol::Redis => Machine::Redis(redis::Machine::default()),
            Protocol::Mysql => Machine::Mysql(mysql::Machine::default()),
            Protocol::Http2 => {
                return Session(Kind::Http2(Box::new(http2::session::Session::new(role, redaction, counters))));
            }
        };
        Session(Kind::Fifo(Box::new(Fifo::new(protocol, machine, role, redaction, counters))))
    }

    pub fn protocol(&self) -> Protocol {
        match &self.0 {
            Kind::Fifo(f) => f.protocol,
            Kind::Http2(_) => Protocol::Http2,
        }
    }

    pub fn stats(&self) -> SessionStats {
        let c = match &self.0 {
            Kind::Fifo(f) => &f.stats,
            Kind::Http2(h) => h.counters(),
        };
        let d = |r: ParseDrop| c.dropped[r as usize].get();
        SessionStats {
            resyncs: c.resyncs.get(),
            dropped_calls: d(ParseDrop::Unframed),
            orphan_responses: d(ParseDrop::OrphanResponse),
            dropped_requests: d(ParseDrop::PendingFull),
            headers_incomplete: c.headers_incomplete.get(),
        }
    }

    /// Requests parsed since the last call, in order (each later completes as an `Exchange`
    /// with the same `seq`, or is dropped when the pending queue is full). HTTP/2 requests
    /// have their stream id as `seq`, plus, after an `Upgrade: h2c`, the number of HTTP/1.1
    /// requests before it.
    pub fn take_started(&mut self) -> std::vec::Drain<'_, Started> {
        match &mut self.0 {
            Kind::Fifo(f) => f.started.drain(..),
            Kind::Http2(h) => h.take_started(),
        }
    }

    /// Whether this session's request numbers may have drifted from the other end's count
    /// (then they must not pair requests across the connection's two ends). HTTP/2 requests
    /// are numbered by stream id, the same at both ends: they never drift.
    pub fn drifted(&self) -> bool {
        match &self.0 {
            Kind::Fifo(f) => f.drifted,
            Kind::Http2(h) => h.drifted(),
        }
    }

    /// An estimate of the heap bytes the session holds: buffered bytes (capacity), requests
    /// waiting for their response, HTTP/2 streams.
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Kind::Fifo(f) => {
                std::mem::size_of::<Fifo>()
                    + f.streams.iter().map(Stream::heap_bytes).sum::<usize>()
                    + f.pending.capacity() * std::mem::size_of::<Pending>()
            }
            Kind::Http2(h) => h.heap_bytes(),
        }
    }

    /// The kernel lost calls of this connection that moved bytes in `dir`, before the next one
    /// fed. That direction's framing is gone: it resynchronises at the next message boundary.
    /// Lost requests make the request count drift; after lost responses, the requests sent
    /// before the loss end unanswered once a response to a later request is found, so that
    /// responses never pair with the wrong request.
    pub fn lost_calls(&mut self, dir: Direction) {
        match &mut self.0 {
            Kind::Fifo(f) => {
                let side = if dir == f.ctx.role.request_direction() { Side::Request } else { Side::Response };
                if !f.streams[index(side)].lost {
                    f.lose(side);
                }
                if side == Side::Response {
                    // Every request so far may have lost its response, those since an earlier
                    // loss too: only a response to a later request resynchronises.
                    f.response_lost_at = Some(f.next_seq);
                }
            }
            Kind::Http2(h) => {
                let side = if dir == h.role().request_direction() { Side::Request } else { Side::Response };
                h.lost_calls(side);
            }
        }
    }

    /// Requests still waiting for their response.
    pub fn pending(&self) -> usize {
        match &self.0 {
            Kind::Fifo(f) => f.pending.len(),
            Kind::Http2(h) => h.pending(),
        }
    }

    /// One captured syscall's bytes. `data` is what was captured (maybe a prefix); `total_len`
    /// (at least `data.len()`) is how many bytes the call really moved: the rest is a gap the
    /// parser accounts for. Timestamps are CLOCK_MONOTONIC ns of the syscall's entry and exit.
    pub fn feed(
        &mut self,
        dir: Direction,
        data: &[u8],
        total_len: usize,
        ts_enter_ns: u64,
        ts_exit_ns: u64,
        out: &mut Vec<Exchange>,
    ) {
        match &mut self.0 {
            Kind::Fifo(f) => {
                f.feed(dir, data, total_len, ts_enter_ns, ts_exit_ns, out);
                if f.upgrade.is_some() {
                    self.switch_to_http2(ts_enter_ns, ts_exit_ns, total_len.saturating_sub(data.len()), out);
                }
            }
            Kind::Http2(h) => {
                let side = if dir == h.role().request_direction() { Side::Request } else { Side::Response };
                h.feed(side, data, total_len, ts_enter_ns, ts_exit_ns, out);
            }
        }
    }

    /// The connection switched to HTTP/2 in a response call (`enter`..`exit`, which moved
    /// `gap` bytes beyond its capture): an HTTP/2 session takes over, with the upgraded request
    /// as its stream 1 and the bytes after the switch.
    fn switch_to_http2(&mut self, enter: u64, exit: u64, gap: usize, out: &mut Vec<Exchange>) {
        let Kind::Fifo(f) = &mut self.0 else { return };
        let Some(up) = f.upgrade.take() else { return };
        let request = up.request.map(|p| http2::session::Upgraded {
            seq: p.seq,
            start_ns: p.start_ns,
            attrs: p.req.attrs,
            context: p.req.context,
        });
        let mut h = http2::session::Session::upgraded(
            f.ctx.role,
            f.ctx.redaction,
            f.stats.clone(),
            request,
            f.next_seq,
            f.drifted,
        );
        h.carry_started(f.started.drain(..));
        let (requests, requests_exit) = up.requests;
        if !requests.is_empty() {
            h.feed_leftover(Side::Request, &requests, 0, requests_exit, requests_exit, out);
        }
        if !up.responses.is_empty() || gap > 0 {
            h.feed_leftover(Side::Response, &up.responses, gap, enter, exit, out);
        }
        self.0 = Kind::Http2(Box::new(h));
    }

    /// The connection closed (or was reset): a response delimited by the close completes;
    /// requests still waiting end with an error exchange.
    pub fn close(&mut self, ts_ns: u64, reset: bool, out: &mut Vec<Exchange>) {
        match &mut self.0 {
            Kind::Fifo(f) => f.close(ts_ns, reset, out),
            Kind::Http2(h) => h.close(ts_ns, reset, out),
        }
    }
}

impl Fifo {
    fn new(protocol: Protocol, machine: Machine, role: Role, redaction: Redaction, counters: SessionCounters) -> Self {
        Fifo {
            protocol,
            ctx: Ctx { role, redaction },
            machine,
            streams: [Stream::default(), Stream::default()],
            pending: VecDeque::new(),
            next_seq: 0,
            response_lost_at: None,
            stopped: false,
            drifted: false,
            stats: counters,
            started: Vec::new(),
            upgrade: None,
        }
    }

    /// One captured syscall's bytes. `data` is what was captured (maybe a prefix); `total_len`
    /// (at least `data.len()`) is how many bytes the call really moved: the rest is a gap the
    /// parser accounts for. Timestamps are CLOCK_MONOTONIC ns of the syscall's entry and exit.
    fn feed(
        &mut self,
        dir: Direction,
        data: &[u8],
        total_len: usize,
        ts_enter_ns: u64,
        ts_exit_ns: u64,
        out: &mut Vec<Exchange>,
    ) {
        if self.stopped {
            return;
        }
        let side = if dir == self.ctx.role.request_direction() { Side::Request } else { Side::Response };
        let i = index(side);
        let gap = total_len.saturating_sub(data.len()) as u64;
        self.streams[i].last_exit = ts_exit_ns;
        if self.streams[i].lost {
            let fresh = side == Side::Request || self.response_lost_at.is_none_or(|at| self.next_seq > at);
            if data.is_empty() || !fresh || !self.machine.resync(side, data) {
                self.stats.drop(ParseDrop::Unframed);
                return;
            }
            self.streams[i].lost = false;
            if side == Side::Response {
                self.abandon_before_loss(ts_enter_ns, out);
            }
        }
        if !self.feed_data(side, data, ts_enter_ns, ts_exit_ns, out) || self.stopped {
            return;
        }
        if gap > 0 {
            self.feed_gap(side, gap, ts_exit_ns, out);
        }
    }

    /// Parses captured bytes; false when the rest of the call was dropped (framing lost).
    fn feed_data(&mut self, side: Side, data: &[u8], enter: u64, exit: u64, out: &mut Vec<Exchange>) -> bool {
        let i = index(side);
        let mut rest = data;
        loop {
            if self.streams[i].skip > 0 {
                let st = &mut self.streams[i];
                let buffered = st.data().len() as u64;
                let mut end = exit;
                if buffered > 0 {
                    let n = st.skip.min(buffered);
                    end = st.consume(n as usize).unwrap_or(exit);
                    if st.skip != UNTIL_CLOSE {
                        st.skip -= n;
                    }
                }
                if st.skip > 0 && !rest.is_empty() {
                    let n = st.skip.min(rest.len() as u64);
                    rest = &rest[n as usize..];
                    if st.skip != UNTIL_CLOSE {
                        st.skip -= n;
                    }
                    end = exit;
                }
                if st.skip > 0 {
                    return true;
                }
                if let Some(ev) = st.after_skip.take() {
                    let start = st.msg_start;
                    self.handle(ev, start, end, out);
                    if self.stopped {
                        self.keep_after_upgrade(rest);
                        return false;
                    }
                }
                continue;
            }
            if !rest.is_empty() {
                let off = (data.len() - rest.len()) as u64;
                let n = self.streams[i].append(rest, enter, exit, off);
                rest = &rest[n..];
            }
            if self.streams[i].is_empty() {
                return true;
            }
            let head = self.pending.front().map(|p| &p.req);
            let progress = self.machine.decode(side, self.streams[i].data(), head, &self.ctx);
            match progress {
                Progress::Advance { consumed, begins, now, skip, then } => {
                    if consumed == 0 && skip == 0 && now.is_none() && then.is_none() {
                        self.lose(side);
                        return false;
                    }
                    let st = &mut self.streams[i];
                    if begins {
                        st.msg_start = st.front_enter().unwrap_or(enter);
                        st.msg_at = st.front_at();
                    }
                    let end = st.consume(consumed).unwrap_or(exit);
                    let start = st.msg_start;
                    if let Some(ev) = now {
                        self.handle(ev, start, end, out);
                        if self.stopped {
                            self.keep_after_upgrade(rest);
                            return false;
                        }
                    }
                    let st = &mut self.streams[i];
                    if skip > 0 {
                        st.skip = skip;
                        st.after_skip = then;
                    } else if let Some(ev) = then {
                        self.handle(ev, start, end, out);
                        if self.stopped {
                            self.keep_after_upgrade(rest);
                            return false;
                        }
                    }
                }
                Progress::NeedMore => {
                    if rest.is_empty() {
                        return true;
                    }
                    if self.streams[i].room() == 0 {
                        // A header larger than the buffer: treat it like a cut message.
                        if !self.cut(side, exit, out) {
                            return false;
                        }
                    }
                }
                Progress::Invalid => {
                    self.lose(side);
                    return false;
                }
            }
        }
    }

    /// The session stopped for an upgrade: the rest of the call goes to the next protocol.
    fn keep_after_upgrade(&mut self, rest: &[u8]) {
        if let Some(up) = &mut self.upgrade {
            up.responses.extend_from_slice(rest);
        }
    }

    /// Accounts for `gap` bytes the call moved beyond its capture.
    fn feed_gap(&mut self, side: Side, mut gap: u64, exit: u64, out: &mut Vec<Exchange>) {
        if self.streams[index(side)].skip > 0 {
            gap = self.skip_gap(side, gap, exit, out);
        }
        if gap == 0 || self.stopped {
            return;
        }
        // The gap cuts a message (or starts one that was never seen).
        if !self.cut(side, exit, out) {
            return;
        }
        let gap = self.skip_gap(side, gap, exit, out);
        if gap > 0 && !self.stopped {
            self.lose(side);
        }
    }

    /// Takes up to `gap` bytes from the side's pending skip; when the skip is done, the event
    /// held for its end is handled. Returns the bytes of the gap left over.
    fn skip_gap(&mut self, side: Side, gap: u64, exit: u64, out: &mut Vec<Exchange>) -> u64 {
        let st = &mut self.streams[index(side)];
        let n = st.skip.min(gap);
        if st.skip != UNTIL_CLOSE {
            st.skip -= n;
        }
        if st.skip == 0
            && let Some(ev) = st.after_skip.take()
        {
            let start = st.msg_start;
            self.handle(ev, start, exit, out);
        }
        gap - n
    }

    /// The buffered message is cut (gap or oversize): asks the machine what survives. True when
    /// framing survives (the rest of the message is then skipped).
    fn cut(&mut self, side: Side, exit: u64, out: &mut Vec<Exchange>) -> bool {
        let i = index(side);
        let head = self.pending.front().map(|p| &p.req);
        let outcome = self.machine.on_gap(side, self.streams[i].data(), head, &self.ctx);
        let st = &mut self.streams[i];
        if !st.is_empty() && st.skip == 0 && st.after_skip.is_none() {
            // The cut message starts in the buffer.
            st.msg_start = st.front_enter().unwrap_or(exit);
            st.msg_at = st.front_at();
        }
        st.clear();
        match outcome.resume_skip {
            Some(n) if n > 0 => {
                st.skip = n;
                st.after_skip = outcome.event;
                true
            }
            resume => {
                if let Some(ev) = outcome.event {
                    let start = st.msg_start;
                    self.handle(ev, start, exit, out);
                }
                if resume.is_some() {
                    return true;
                }
                self.lose(side);
                false
            }
        }
    }

    fn lose(&mut self, side: Side) {
        self.streams[index(side)].lose();
        self.stats.resyncs.inc();
        if side == Side::Request {
            self.drifted = true;
        }
        if side == Side::Response {
            self.response_lost_at = Some(self.next_seq);
        }
    }

    /// Requests sent before the response stream lost its framing got responses nobody saw:
    /// they end (at `end`) marked `tracer.truncated`, so later responses pair correctly.
    fn abandon_before_loss(&mut self, end: u64, out: &mut Vec<Exchange>) {
        let Some(at) = self.response_lost_at.take() else {
            return;
        };
        while self.pending.front().is_some_and(|p| p.seq < at) {
            if let Some(p) = self.pending.pop_front() {
                let resp = Response { truncated: true, ..Response::default() };
                out.push(self.exchange(p, resp, end));
            }
        }
    }

    fn handle(&mut self, ev: Event, start: u64, end: u64, out: &mut Vec<Exchange>) {
        match ev {
            Event::Request(req) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.started.push(Started {
                    seq,
                    start_ns: start,
                    context: req.context,
                    at: self.streams[0].msg_at.take(),
                });
                if self.pending.len() >= MAX_PENDING {
                    self.stats.drop(ParseDrop::PendingFull);
                } else {
                    self.pending.push_back(Pending { seq, start_ns: start, req });
                }
            }
            Event::OneWay(req) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.started.push(Started {
                    seq,
                    start_ns: start,
                    context: req.context,
                    at: self.streams[0].msg_at.take(),
                });
                let p = Pending { seq, start_ns: start, req };
                out.push(self.exchange(p, Response::default(), end));
            }
            Event::Response(resp) => match self.pending.pop_front() {
                Some(p) => out.push(self.exchange(p, resp, end)),
                None => {
                    self.stats.drop(ParseDrop::OrphanResponse);
                    self.drifted = true;
                }
            },
            Event::UpgradeH2c => {
                self.upgrade = Some(Upgrade {
                    request: self.pending.pop_front(),
                    requests: (self.streams[0].data().to_vec(), self.streams[0].last_exit),
                    responses: self.streams[1].data().to_vec(),
                });
                self.handle(Event::Stop, start, end, out);
            }
            Event::Stop => {
                self.stopped = true;
                for st in &mut self.streams {
                    st.clear();
                    st.skip = 0;
                    st.after_skip = None;
                }
            }
        }
    }

    fn exchange(&self, p: Pending, resp: Response, end: u64) -> Exchange {
        let mut attrs = p.req.attrs;
        resp.facts.apply(&mut attrs);
        Exchange {
            protocol: self.protocol,
            seq: p.seq,
            start_ns: p.start_ns,
            end_ns: end.max(p.start_ns),
            operation: resp.operation.unwrap_or(p.req.operation),
            attrs,
            truncated: resp.truncated,
            error: resp.error,
            context: p.req.context.or(resp.context),
        }
    }

    fn close(&mut self, ts_ns: u64, reset: bool, out: &mut Vec<Exchange>) {
        for side in [Side::Request, Side::Response] {
            let st = &mut self.streams[index(side)];
            if st.skip == UNTIL_CLOSE
                && let Some(ev) = st.after_skip.take()
            {
                let (start, end) = (st.msg_start, st.last_exit);
                st.skip = 0;
                self.handle(ev, start, end, out);
            }
        }
        let error = if reset { "connection reset before response" } else { "connection closed before response" };
        while let Some(p) = self.pending.pop_front() {
            let resp = Response { error: Some(error.to_string()), ..Response::default() };
            out.push(self.exchange(p, resp, ts_ns));
        }
        self.stopped = true;
        for st in &mut self.streams {
            st.clear();
        }
    }
}
