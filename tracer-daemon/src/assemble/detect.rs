//! Protocol detection with replay: the calls of a connection whose protocol is not yet known are
//! kept (bounded) until the first bytes name a protocol, then replayed into its session.

use crate::{
    protocol::{self, Detect, Direction, Protocol, Redaction, Role, Session, SessionCounters},
    reader::decode::KernelContext,
};

/// Bytes kept while the protocol of a connection is not yet known.
const DETECT_BYTES: usize = 4096;
/// Calls kept while the protocol of a connection is not yet known.
const DETECT_CALLS: usize = 8;

/// One captured call as the protocol session reads it.
#[derive(Clone, Copy)]
pub(super) struct Call<'a> {
    pub dir: Direction,
    pub data: &'a [u8],
    pub total: usize,
    pub tid: u32,
    /// Go programs: the goroutine that made the call.
    pub goid: Option<u64>,
    /// CLOCK_MONOTONIC ns: when the call's bytes exist for the process.
    pub enter: u64,
    pub exit: u64,
    /// Trace context the kernel attached to the call.
    pub context: Option<KernelContext>,
    /// TCP sequence number of the call's first byte.
    pub seq: Option<u32>,
}

/// A captured call kept for replay once the protocol is known.
pub(super) struct Buffered {
    dir: Direction,
    data: Vec<u8>,
    total: usize,
    tid: u32,
    goid: Option<u64>,
    enter: u64,
    exit: u64,
    context: Option<KernelContext>,
    seq: Option<u32>,
}

impl Buffered {
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Buffered>() + self.data.capacity()
    }

    pub fn view(&self) -> Call<'_> {
        let Buffered { dir, ref data, total, tid, goid, enter, exit, context, seq } = *self;
        Call { dir, data, total, tid, goid, enter, exit, context, seq }
    }
}

impl Call<'_> {
    pub fn to_owned(self) -> Buffered {
        let Call { dir, data, total, tid, goid, enter, exit, context, seq } = self;
        Buffered { dir, data: data.to_vec(), total, tid, goid, enter, exit, context, seq }
    }
}

/// What the daemon knows of a connection's protocol.
#[derive(Default)]
pub(super) enum Proto {
    #[default]
    Fresh,
    Detecting(Vec<Buffered>),
    Active(Box<Session>),
    /// Not a protocol the daemon parses; the connection gives no spans.
    Unknown,
    /// The other end is the daemon itself (its exporter or admin traffic): never traced.
    Own,
}

/// The result of offering the calls seen so far to detection.
pub(super) enum Detection {
    /// Not decided: keep the calls.
    Wait(Vec<Buffered>),
    /// The protocol is known: replay the calls into the session.
    Found(Protocol, Box<Session>, Vec<Buffered>),
    /// No protocol the daemon parses (or too many bytes without a decision).
    Unknown,
}

/// Detects on everything seen so far in the first direction that spoke.
pub(super) fn detect(
    pending: Vec<Buffered>,
    role: Role,
    redaction: Redaction,
    counters: &SessionCounters,
) -> Detection {
    let first_dir = pending[0].dir;
    let seen: Vec<u8> = pending.iter().filter(|c| c.dir == first_dir).flat_map(|c| c.data.iter().copied()).collect();
    match protocol::detect(&seen, first_dir, role) {
        Detect::Found(p) => {
            Detection::Found(p, Box::new(Session::with_counters(p, role, redaction, counters.clone())), pending)
        }
        Detect::NeedMore if seen.len() < DETECT_BYTES && pending.len() < DETECT_CALLS => Detection::Wait(pending),
        _ => Detection::Unknown,
    }
}
