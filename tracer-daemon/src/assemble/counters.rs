//! The assembly stage's counters, handed in at construction and counted where things happen.

use crate::{metrics::Counter, metrics::Registry, protocol::Protocol, protocol::SessionCounters};

/// How a client-library call ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LibraryOutcome {
    /// Its details joined the wire span of the same request.
    Merged,
    /// It became a span of its own (no wire exchange: encrypted traffic).
    Alone,
}

impl LibraryOutcome {
    pub const ALL: [LibraryOutcome; 2] = [LibraryOutcome::Merged, LibraryOutcome::Alone];

    pub fn as_str(self) -> &'static str {
        match self {
            LibraryOutcome::Merged => "merged",
            LibraryOutcome::Alone => "alone",
        }
    }
}

/// What a peer's trace-context option came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionOutcome {
    Matched,
    Unmatched,
}

impl OptionOutcome {
    pub const ALL: [OptionOutcome; 2] = [OptionOutcome::Matched, OptionOutcome::Unmatched];

    pub fn as_str(self) -> &'static str {
        match self {
            OptionOutcome::Matched => "matched",
            OptionOutcome::Unmatched => "unmatched",
        }
    }
}

/// Why assembly dropped something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssembleDrop {
    /// A request started while a connection already had the most open requests the protocol
    /// session keeps (`MAX_PENDING`): the session dropped it, and it keeps no ids either.
    OpenFull,
}

impl AssembleDrop {
    pub const ALL: [AssembleDrop; 1] = [AssembleDrop::OpenFull];

    pub fn as_str(self) -> &'static str {
        match self {
            AssembleDrop::OpenFull => "open_requests_full",
        }
    }
}

/// What a grpc-go stream hand-off (`EVENT_GO_STREAM`) came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamOutcome {
    /// Applied to the stream's request, which had started.
    Applied,
    /// Kept for the stream's request, which had not started yet.
    Waiting,
    /// Dropped: the connection is not in the connection table.
    UnknownConnection,
    /// Dropped: the connection's role or process is not the probe's.
    Mismatch,
    /// Dropped: the connection already kept `MAX_HANDOFFS` hand-offs waiting.
    WaitingFull,
}

impl StreamOutcome {
    pub const ALL: [StreamOutcome; 5] = [
        StreamOutcome::Applied,
        StreamOutcome::Waiting,
        StreamOutcome::UnknownConnection,
        StreamOutcome::Mismatch,
        StreamOutcome::WaitingFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StreamOutcome::Applied => "applied",
            StreamOutcome::Waiting => "waiting",
            StreamOutcome::UnknownConnection => "unknown_connection",
            StreamOutcome::Mismatch => "mismatch",
            StreamOutcome::WaitingFull => "waiting_full",
        }
    }
}

#[derive(Clone, Debug)]
pub struct AssembleCounters {
    pub spans: Counter,
    /// Connections whose protocol is not one the daemon parses.
    pub unknown_protocol: Counter,
    /// Connections whose other end is the daemon itself.
    pub own_traffic: Counter,
    /// Connections by detected protocol, indexed by `Protocol::ALL` order.
    pub detected: [Counter; Protocol::ALL.len()],
    /// By `LibraryOutcome`.
    pub library: [Counter; LibraryOutcome::ALL.len()],
    /// By `OptionOutcome`.
    pub options: [Counter; OptionOutcome::ALL.len()],
    /// Connections whose request-direction sequence numbers jumped (calls were lost).
    pub lost_calls: Counter,
    /// Shared by every connection's protocol session.
    pub sessions: SessionCounters,
    /// By `AssembleDrop`.
    pub dropped: [Counter; AssembleDrop::ALL.len()],
    /// By `StreamOutcome`.
    pub streams: [Counter; StreamOutcome::ALL.len()],
}

impl AssembleCounters {
    /// Counters registered nowhere (tests).
    pub fn detached() -> Self {
        AssembleCounters {
            spans: Counter::detached(),
            unknown_protocol: Counter::detached(),
            own_traffic: Counter::detached(),
            detected: Protocol::ALL.map(|_| Counter::detached()),
            library: LibraryOutcome::ALL.map(|_| Counter::detached()),
            options: OptionOutcome::ALL.map(|_| Counter::detached()),
            lost_calls: Counter::detached(),
            sessions: SessionCounters::detached(),
            dropped: AssembleDrop::ALL.map(|_| Counter::detached()),
            streams: StreamOutcome::ALL.map(|_| Counter::detached()),
        }
    }

    pub fn register(reg: &Registry) -> Self {
        const LIB_HELP: &str = "Client-library calls (uprobes) by outcome: merged into the wire span of the same request, or a span of their own (encrypted traffic)";
        const OPTIONS_HELP: &str = "Peers' trace-context options by outcome: matched to the server request that begins at the packet's first byte, or dropped (no request began there, or the connection ended first)";
        AssembleCounters {
            spans: reg.counter("tracer_spans_assembled_total", "Spans assembled from captured traffic", &[]),
            lost_calls: reg.counter(
                "tracer_assemble_lost_calls_total",
                "Connections whose request-direction TCP sequence numbers jumped (captured calls lost): they make no same-host joins from then on",
                &[],
            ),
            unknown_protocol: reg.counter(
                "tracer_connections_unparsed_total",
                "Connections whose protocol is not one the daemon parses (no spans)",
                &[],
            ),
            own_traffic: reg.counter(
                "tracer_connections_own_total",
                "Connections whose other end is the daemon itself (never traced)",
                &[],
            ),
            detected: Protocol::ALL.map(|p| {
                reg.counter(
                    "tracer_connections_detected_total",
                    "Connections by detected protocol",
                    &[("protocol", p.as_str())],
                )
            }),
            library: LibraryOutcome::ALL
                .map(|o| reg.counter("tracer_library_calls_total", LIB_HELP, &[("outcome", o.as_str())])),
            options: OptionOutcome::ALL
                .map(|o| reg.counter("tracer_propagation_options_total", OPTIONS_HELP, &[("outcome", o.as_str())])),
            sessions: SessionCounters::register(reg),
            dropped: AssembleDrop::ALL.map(|r| {
                reg.counter(
                    "tracer_assemble_dropped_total",
                    "Requests assembly kept no state for, by reason",
                    &[("reason", r.as_str())],
                )
            }),
            streams: StreamOutcome::ALL.map(|o| {
                reg.counter(
                    "tracer_go_streams_total",
                    "grpc-go stream hand-offs (the goroutine that makes a gRPC call or serves a gRPC request) by outcome: applied, waiting for the stream's request, or dropped (unknown_connection, mismatch, waiting_full)",
                    &[("outcome", o.as_str())],
                )
            }),
        }
    }

    pub fn stream(&self, o: StreamOutcome) {
        self.streams[o as usize].inc();
    }

    pub fn span(&self) {
        self.spans.inc();
    }

    pub fn library(&self, merged: bool) {
        let o = if merged { LibraryOutcome::Merged } else { LibraryOutcome::Alone };
        self.library[o as usize].inc();
    }

    /// Drops so far for `reason`.
    pub fn dropped(&self, reason: AssembleDrop) -> u64 {
        self.dropped[reason as usize].get()
    }

    pub fn option(&self, o: OptionOutcome) -> &Counter {
        &self.options[o as usize]
    }

    pub fn detected(&self, p: Protocol) {
        if let Some(i) = Protocol::ALL.iter().position(|x| *x == p) {
            self.detected[i].inc();
        }
    }
}
