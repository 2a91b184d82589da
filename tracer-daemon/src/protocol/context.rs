//! Trace contexts carried inside requests: W3C `traceparent`, Jaeger `uber-trace-id`, and
//! sqlcommenter-style `traceparent='…'` comments in SQL.

use super::{ContextSource, TraceContext};
use crate::model::TraceId;

fn hex_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// A trace id of 1 to 32 hex digits; None when malformed or zero.
fn trace_id(s: &[u8]) -> Option<TraceId> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let split = s.len().saturating_sub(16);
    let high = if split == 0 { 0 } else { hex_u64(&s[..split])? };
    let low = hex_u64(&s[split..])?;
    let id = TraceId { high, low };
    (id != TraceId::default()).then_some(id)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or(&[])
}

/// W3C trace context: `version-traceid(32 hex)-parentid(16 hex)-flags(2 hex)`.
pub fn parse_traceparent(value: &[u8]) -> Option<TraceContext> {
    let v = trim(value);
    if v.len() < 55 {
        return None;
    }
    let version = hex_u64(&v[0..2])?;
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace_id = if v[3..35].len() == 32 {
        trace_id(&v[3..35])?
    } else {
        return None;
    };
    let span_id = hex_u64(&v[36..52]).filter(|&s| s != 0)?;
    let flags = hex_u64(&v[53..55])?;
    Some(TraceContext { trace_id, span_id, sampled: flags & 1 == 1, source: ContextSource::Traceparent })
}

/// Jaeger `traceid:spanid:parentid:flags` (hex; `%3A` accepted for `:`).
pub fn parse_uber_trace_id(value: &[u8]) -> Option<TraceContext> {
    let v = trim(value);
    if v.len() > 128 {
        return None;
    }
    let mut decoded = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' && v.get(i + 1..i + 3).is_some_and(|h| h.eq_ignore_ascii_case(b"3a")) {
            decoded.push(b':');
            i += 3;
        } else {
            decoded.push(v[i]);
            i += 1;
        }
    }
    let mut parts = decoded.split(|&c| c == b':');
    let trace_id = trace_id(parts.next()?)?;
    let span_id = hex_u64(parts.next()?).filter(|&s| s != 0)?;
    hex_u64(parts.next()?)?;
    let flags = hex_u64(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    Some(TraceContext { trace_id, span_id, sampled: flags & 1 == 1, source: ContextSource::UberTraceId })
}

/// A sqlcommenter `traceparent='…'` inside a `/* … */` comment of a SQL statement.
pub fn find_sql_traceparent(sql: &[u8]) -> Option<TraceContext> {
    let mut rest = sql;
    while let Some(open) = find(rest, b"/*") {
        let body = &rest[open + 2..];
        let close = find(body, b"*/").unwrap_or(body.len());
        let comment = &body[..close];
        if let Some(at) = find_ci(comment, b"traceparent='") {
            let value = &comment[at + 13..];
            let end = value.iter().position(|&c| c == b'\'').unwrap_or(value.len());
            if let Some(mut ctx) = parse_traceparent(&value[..end]) {
                ctx.source = ContextSource::SqlComment;
                return Some(ctx);
            }
        }
        rest = body.get(close..).unwrap_or(&[]);
    }
    None
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent() {
        let c = parse_traceparent(TP).expect("valid");
        assert_eq!(c.trace_id, TraceId { high: 0x4bf92f3577b34da6, low: 0xa3ce929d0e0e4736 });
        assert_eq!(c.span_id, 0x00f067aa0ba902b7);
        assert!(c.sampled);
        assert_eq!(c.source, ContextSource::Traceparent);
        let unsampled = parse_traceparent(b" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ").expect("valid");
        assert!(!unsampled.sampled);
        // Future versions may append fields after a dash.
        assert!(parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz").is_some());
    }

    #[test]
    fn traceparent_rejects_malformed() {
        for bad in [
            &b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn uber_trace_id() {
        let c = parse_uber_trace_id(b"5af7183fb1d4cf5f:6c4a1e2bd08e3f21:0:1").expect("valid");
        assert_eq!(c.trace_id, TraceId { high: 0, low: 0x5af7183fb1d4cf5f });
        assert_eq!(c.span_id, 0x6c4a1e2bd08e3f21);
        assert!(c.sampled);
        let long = parse_uber_trace_id(b"1a2b3c4d5e6f70810000000000000001%3A2%3A0%3A0").expect("valid");
        assert_eq!(long.trace_id, TraceId { high: 0x1a2b3c4d5e6f7081, low: 1 });
        assert_eq!(long.span_id, 2);
        assert!(!long.sampled);
        assert_eq!(parse_uber_trace_id(b"0:1:0:1"), None);
        assert_eq!(parse_uber_trace_id(b"1:0:0:1"), None);
        assert_eq!(parse_uber_trace_id(b"1:2:0"), None);
        assert_eq!(parse_uber_trace_id(b"1:2:0:1:5"), None);
        assert_eq!(parse_uber_trace_id(b"123456789012345678901234567890123:1:0:1"), None);
    }

    #[test]
    fn sql_comment() {
        let sql = b"SELECT 1 /*db_driver='x',traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/";
        let c = find_sql_traceparent(sql).expect("found");
        assert_eq!(c.source, ContextSource::SqlComment);
        assert_eq!(c.span_id, 0x00f067aa0ba902b7);
        assert_eq!(
            find_sql_traceparent(b"SELECT 'traceparent=''00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'''"),
            None
        );
        assert_eq!(find_sql_traceparent(b"SELECT 1 /* unterminated traceparent='00-"), None);
    }
}
