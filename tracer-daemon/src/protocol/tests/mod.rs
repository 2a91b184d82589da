//! Tests of the protocol layer against captures of real servers (`testdata/<proto>/*.cap`) and
//! hand-written edge cases.

mod edge;
pub(crate) mod harness;
mod http2_captures;
mod http_captures;
mod mysql_captures;
mod redis_captures;
