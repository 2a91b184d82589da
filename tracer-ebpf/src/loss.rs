//! Data calls lost on a socket: the ring buffer was full, the in-flight table was, or the
//! socket's tuple could not be read. The socket is marked with the directions lost
//! (`LOST_SOCKETS`), and its next data event carries the mark (`FLAG_LOST_*`): the daemon then
//! knows that the connection's requests and responses must be paired afresh from the next
//! message boundary, and marks the spans that follow. A close takes the mark away.
//!
//! Data calls look the table up only while it holds any mark (`LOST_COUNT`): without losses a
//! call pays one array read.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use tracer_common::{COUNTER_LOSS_UNMARKED, DIR_INGRESS, FLAG_LOST_EGRESS, FLAG_LOST_INGRESS};

use crate::maps;

/// `bpf_map_update_elem` flag: create only.
const BPF_NOEXIST: u64 = 1;

/// Adds `delta` (wrapping: `u64::MAX` takes one away) to the count of marked sockets.
#[inline(always)]
fn add(delta: u64) {
    if let Some(ptr) = maps::LOST_COUNT.get_ptr_mut(0) {
        // SAFETY: an aligned `u64` array value, shared by every CPU: changed atomically (the
        // BPF target has no `AtomicU64::fetch_add`; this is its atomic add instruction).
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(ptr, delta) };
    }
}

/// The `FLAG_LOST_*` bit of a `DIR_*` direction.
#[inline(always)]
pub fn bit(direction: u32) -> u32 {
    if direction == DIR_INGRESS { FLAG_LOST_INGRESS } else { FLAG_LOST_EGRESS }
}

/// Marks `sock` with the `FLAG_LOST_*` bits `bits`.
#[inline(always)]
pub fn mark(sock: u64, bits: u32) {
    if sock == 0 || bits == 0 {
        return;
    }
    if let Some(v) = maps::LOST_SOCKETS.get_ptr_mut(sock) {
        // SAFETY: map value pointer, valid for this program run.
        unsafe { *v |= bits };
        return;
    }
    match maps::LOST_SOCKETS.insert(sock, bits, BPF_NOEXIST) {
        Ok(()) => add(1),
        // Another CPU marked it meanwhile (its bits stand for the same loss), or the table is full.
        Err(_) if maps::LOST_SOCKETS.get_ptr_mut(sock).is_some() => {}
        Err(_) => maps::count(COUNTER_LOSS_UNMARKED),
    }
}

/// Takes the mark of `sock`: the `FLAG_LOST_*` bits of what it lost since its last event, or 0.
#[inline(always)]
pub fn take(sock: u64) -> u32 {
    // SAFETY: the value is copied out.
    let marked = maps::LOST_COUNT.get(0).copied().unwrap_or(0);
    if marked == 0 {
        return 0;
    }
    // SAFETY: the value is copied out before removal.
    let Some(bits) = (unsafe { maps::LOST_SOCKETS.get(sock) }).copied() else { return 0 };
    if maps::LOST_SOCKETS.remove(sock).is_ok() {
        add(u64::MAX);
    }
    bits
}
