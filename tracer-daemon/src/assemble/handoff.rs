//! grpc-go stream hand-offs: the goroutine that makes a gRPC call, or serves a gRPC request,
//! is not the one that writes or reads its frames (`uprobes::grpcgo`). The kernel names it per
//! stream (`EVENT_GO_STREAM`); this module gives that name to the stream's request: a server
//! request is also served by the handler's goroutine, so that its calls are the request's
//! children by the goroutine rule; a client request is the call of the goroutine that sends on
//! it, so that it is the child of what that goroutine serves. A hand-off that comes before its
//! request started waits on the connection for it.

use super::{Assembler, ConnSpans};
use crate::{
    assemble::counters::StreamOutcome,
    conn::{Conn, Role},
    reader::decode::{GoStreamRecord, StreamRole},
    stitch::{IdSource, Runner, Stitcher},
};

/// Most hand-offs a connection keeps waiting for their requests (the oldest goes first).
pub const MAX_HANDOFFS: usize = 64;

impl Assembler {
    /// A goroutine took up stream `rec.stream_id` of `conn`; `None`: the connection is unknown.
    pub fn on_go_stream<I: IdSource>(
        &mut self,
        conn: Option<&mut Conn<ConnSpans>>,
        rec: &GoStreamRecord,
        st: &mut Stitcher<I>,
    ) {
        let counters = &self.env.counters;
        let Some(conn) = conn else {
            counters.stream(StreamOutcome::UnknownConnection);
            return;
        };
        let role = match rec.role {
            StreamRole::Client => Role::Client,
            StreamRole::Server => Role::Server,
        };
        if conn.role != role || conn.pid != rec.pid {
            counters.stream(StreamOutcome::Mismatch);
            return;
        }
        let seq = u64::from(rec.stream_id);
        let runner = Runner::Goroutine(rec.goid);
        if let Some((ids, _)) = conn.state.open.get(&seq) {
            match role {
                Role::Server => st.server_handoff(conn.pid, runner, ids),
                Role::Client => st.client_caller(conn.pid, runner, ids, rec.ts_ns),
            }
            counters.stream(StreamOutcome::Applied);
            return;
        }
        let waiting = &mut conn.state.handoffs;
        waiting.retain(|(s, _)| *s != seq);
        if waiting.len() >= MAX_HANDOFFS {
            waiting.pop_front();
            counters.stream(StreamOutcome::WaitingFull);
        }
        waiting.push_back((seq, rec.goid));
        counters.stream(StreamOutcome::Waiting);
    }
}

/// The goroutine that took up stream `seq` before its request started, if one did.
pub fn take(state: &mut ConnSpans, seq: u64) -> Option<u64> {
    let at = state.handoffs.iter().position(|(s, _)| *s == seq)?;
    state.handoffs.remove(at).map(|(_, goid)| goid)
}
