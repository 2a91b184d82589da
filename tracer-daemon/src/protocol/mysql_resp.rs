//! MySQL / MariaDB responses in the command phase: OK, ERR and EOF packets, text and binary
//! result sets (with and without CLIENT_DEPRECATE_EOF), multi-results, prepare responses and
//! LOCAL INFILE requests, one packet at a time.

use super::mysql::{COM_CHANGE_USER, COM_FIELD_LIST, COM_STATISTICS, COM_STMT_FETCH, COM_STMT_PREPARE, Command};
use super::{Response, ResponseFacts, bounded_str};

/// Server status flag: another result follows this one.
pub(crate) const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
/// Server status flag: an execute opened a cursor; rows come with COM_STMT_FETCH.
const SERVER_STATUS_CURSOR_EXISTS: u16 = 0x0040;
/// The payload length that announces a continuation packet.
pub(crate) const MAX_PAYLOAD: u32 = 0xff_ffff;

/// A length-encoded integer at the start of `b`: (value, bytes used).
pub(crate) fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
    let (&first, rest) = b.split_first()?;
    let width = match first {
        0..=0xfa => return Some((u64::from(first), 1)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = rest.get(..width)?;
    let v = bytes.iter().rev().fold(0u64, |acc, &c| (acc << 8) | u64::from(c));
    Some((v, 1 + width))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The status flags of an OK packet (`0x00` or `0xFE` header) payload.
pub(crate) fn ok_status(payload: &[u8]) -> u16 {
    let rest = payload.get(1..).unwrap_or_default();
    let Some((_, a)) = lenenc(rest) else { return 0 };
    let Some((_, b)) = rest.get(a..).and_then(lenenc) else {
        return 0;
    };
    u16_at(rest, a + b).unwrap_or(0)
}

/// The status flags of an EOF packet payload (`0xFE`, warnings, status).
fn eof_status(payload: &[u8]) -> u16 {
    u16_at(payload, 3).unwrap_or(0)
}

/// An ERR packet payload as `ERROR 1064 (42000): message`, and its code.
pub(crate) fn err_message(payload: &[u8]) -> (String, u16) {
    let code = u16_at(payload, 1).unwrap_or(0);
    let rest = payload.get(3..).unwrap_or_default();
    let msg = match rest.split_first() {
        Some((b'#', r)) if r.len() >= 5 => {
            format!("ERROR {code} ({}): {}", bounded_str(&r[..5], 5), bounded_str(&r[5..], 512))
        }
        _ => format!("ERROR {code}: {}", bounded_str(rest, 512)),
    };
    (msg, code)
}

fn is_eof(payload: &[u8], len: u32) -> bool {
    payload.first() == Some(&0xfe) && len < 9
}

/// A result-set terminator: EOF, or (CLIENT_DEPRECATE_EOF) an OK packet with the 0xFE header.
fn is_terminator(payload: &[u8], len: u32) -> bool {
    payload.first() == Some(&0xfe) && len < MAX_PAYLOAD
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// First packet of a response, or of the next result of a multi-result response.
    #[default]
    First,
    /// Column definitions to pass over.
    Columns(u64),
    /// Right after the column definitions: an EOF (classic) or the first row / terminator.
    AfterColumns,
    Rows,
    /// Prepare OK seen: parameter definitions, then column definitions.
    Params {
        left: u64,
        cols: u64,
    },
    ParamsEof {
        cols: u64,
    },
    PrepCols(u64),
    PrepColsEof,
    /// COM_FIELD_LIST: column definitions until EOF.
    FieldList,
}

/// What a response packet meant.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// More packets belong to this response.
    More,
    /// The response is complete.
    Done(Response),
    /// A prepare succeeded: the statement id; unless `done`, definitions follow.
    Prepared { id: u32, done: bool },
    /// The server asks for a local file; the response goes on after the client sent it.
    Infile,
}

/// The response being read.
#[derive(Debug, Default)]
pub(crate) struct ResponseReader {
    state: State,
    rows: u64,
    result_set: bool,
}

impl ResponseReader {
    pub fn reset(&mut self) {
        *self = ResponseReader::default();
    }

    fn done(&mut self, error: Option<(String, u16)>) -> Outcome {
        let rows = self.result_set.then(|| i64::try_from(self.rows).unwrap_or(i64::MAX));
        let error_code = error.as_ref().map(|(_, code)| i64::from(*code));
        let error = error.map(|(msg, _)| msg);
        self.reset();
        Outcome::Done(Response {
            facts: if rows.is_none() && error_code.is_none() {
                ResponseFacts::None
            } else {
                ResponseFacts::Mysql { rows, error_code, resolved: None }
            },
            error,
            ..Response::default()
        })
    }

    fn end_of_result(&mut self, status: u16) -> Outcome {
        if status & SERVER_MORE_RESULTS_EXISTS != 0 {
            self.state = State::First;
            Outcome::More
        } else {
            self.done(None)
        }
    }

    /// One packet of the response to `cmd`: its (maybe truncated) payload and real length.
    pub fn packet(&mut self, cmd: Command, payload: &[u8], len: u32, deprecate_eof: bool) -> Outcome {
        let first = payload.first().copied();
        if first == Some(0xff) && !matches!(self.state, State::Columns(_) | State::Params { .. } | State::PrepCols(_)) {
            return self.done(Some(err_message(payload)));
        }
        match self.state {
            State::First if cmd.code == COM_STMT_FETCH => {
                // Rows of an open cursor, without column definitions.
                self.result_set = true;
                self.state = State::Rows;
                self.packet(cmd, payload, len, deprecate_eof)
            }
            State::First => self.first(cmd, payload, len),
            State::Columns(left) => {
                self.state = if left > 1 { State::Columns(left - 1) } else { State::AfterColumns };
                Outcome::More
            }
            State::AfterColumns => {
                if is_eof(payload, len) && len <= 5 {
                    let status = eof_status(payload);
                    if status & SERVER_STATUS_CURSOR_EXISTS != 0 {
                        return self.done(None);
                    }
                    self.state = State::Rows;
                    return Outcome::More;
                }
                self.state = State::Rows;
                self.packet(cmd, payload, len, deprecate_eof)
            }
            State::Rows => {
                if is_terminator(payload, len) {
                    let status = if len <= 5 { eof_status(payload) } else { ok_status(payload) };
                    return self.end_of_result(status);
                }
                self.rows += 1;
                Outcome::More
            }
            State::Params { left, cols } => {
                self.state = match (left > 1, deprecate_eof, cols > 0) {
                    (true, _, _) => State::Params { left: left - 1, cols },
                    (false, false, _) => State::ParamsEof { cols },
                    (false, true, true) => State::PrepCols(cols),
                    (false, true, false) => return self.done(None),
                };
                Outcome::More
            }
            State::ParamsEof { cols } => {
                if !is_eof(payload, len) {
                    // No EOF after all: this is already a column definition.
                    self.state = State::PrepCols(cols);
                    return self.packet(cmd, payload, len, deprecate_eof);
                }
                if cols == 0 {
                    return self.done(None);
                }
                self.state = State::PrepCols(cols);
                Outcome::More
            }
            State::PrepCols(left) => {
                if left > 1 {
                    self.state = State::PrepCols(left - 1);
                    Outcome::More
                } else if deprecate_eof {
                    self.done(None)
                } else {
                    self.state = State::PrepColsEof;
                    Outcome::More
                }
            }
            State::PrepColsEof => self.done(None),
            State::FieldList => {
                if is_eof(payload, len) {
                    self.done(None)
                } else {
                    Outcome::More
                }
            }
        }
    }

    fn first(&mut self, cmd: Command, payload: &[u8], len: u32) -> Outcome {
        let first = payload.first().copied();
        match (cmd.code, first) {
            (COM_STATISTICS, _) => self.done(None),
            (COM_STMT_PREPARE, Some(0x00)) if payload.len() >= 9 => {
                let id = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
                let cols = u64::from(u16_at(payload, 5).unwrap_or(0));
                let params = u64::from(u16_at(payload, 7).unwrap_or(0));
                if params > 0 {
                    self.state = State::Params { left: params, cols };
                } else if cols > 0 {
                    self.state = State::PrepCols(cols);
                } else {
                    self.reset();
                    return Outcome::Prepared { id, done: true };
                }
                Outcome::Prepared { id, done: false }
            }
            // Authentication exchanges (switch request, more data) precede the final OK.
            (COM_CHANGE_USER, Some(0x01 | 0xfe)) => Outcome::More,
            (COM_FIELD_LIST, Some(0x00 | 0xfe)) => self.done(None),
            (COM_FIELD_LIST, _) => {
                self.state = State::FieldList;
                Outcome::More
            }
            (_, Some(0x00)) if cmd.result_set => {
                let status = ok_status(payload);
                self.end_of_result(status)
            }
            (_, Some(0x00 | 0xfe)) => self.done(None),
            (_, Some(0xfb)) if cmd.result_set => Outcome::Infile,
            (_, Some(_)) if cmd.result_set => {
                let Some((n, width)) = lenenc(payload).filter(|(n, _)| *n > 0) else {
                    return self.done(None);
                };
                self.result_set = true;
                // MariaDB's cache-metadata extension adds a "metadata follows" byte; when it is
                // 0 the column definitions are not sent again.
                let metadata = len as usize != width + 1 || payload.get(width) != Some(&0);
                self.state = if metadata { State::Columns(n) } else { State::AfterColumns };
                Outcome::More
            }
            _ => self.done(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_widths() {
        assert_eq!(lenenc(&[0x05]), Some((5, 1)));
        assert_eq!(lenenc(&[0xfc, 0x01, 0x02]), Some((0x0201, 3)));
        assert_eq!(lenenc(&[0xfd, 1, 2, 3]), Some((0x030201, 4)));
        assert_eq!(lenenc(&[0xfe, 1, 0, 0, 0, 0, 0, 0, 0]), Some((1, 9)));
        assert_eq!(lenenc(&[0xfe, 1]), None);
        assert_eq!(lenenc(&[0xff]), None);
        assert_eq!(lenenc(&[]), None);
    }

    #[test]
    fn err_packets() {
        let p = b"\xff\x28\x04#42000You have an error";
        assert_eq!(err_message(p), ("ERROR 1064 (42000): You have an error".to_string(), 1064));
        assert_eq!(err_message(b"\xff\x15\x04Access denied"), ("ERROR 1045: Access denied".to_string(), 1045));
        assert_eq!(err_message(b"\xff"), ("ERROR 0: ".to_string(), 0));
    }

    fn feed(r: &mut ResponseReader, code: u8, packets: &[&[u8]]) -> Vec<Outcome> {
        let cmd = Command { code, result_set: true };
        packets.iter().map(|p| r.packet(cmd, p, p.len() as u32, false)).collect()
    }

    #[test]
    fn fetch_rows_come_without_definitions() {
        let mut r = ResponseReader::default();
        let got = feed(&mut r, COM_STMT_FETCH, &[b"\x00\x00\x01", b"\x00\x00\x02", b"\xfe\x00\x00\x42\x00"]);
        assert_eq!(got[..2], [Outcome::More, Outcome::More]);
        assert_eq!(
            got[2],
            Outcome::Done(Response {
                facts: ResponseFacts::Mysql { rows: Some(2), error_code: None, resolved: None },
                ..Response::default()
            })
        );
    }

    #[test]
    fn change_user_waits_for_the_final_ok() {
        let mut r = ResponseReader::default();
        let cmd = Command { code: COM_CHANGE_USER, result_set: false };
        assert_eq!(r.packet(cmd, b"\xfemysql_native_password\x00abc", 30, false), Outcome::More);
        assert_eq!(r.packet(cmd, b"\x00\x00\x00\x02\x00\x00\x00", 7, false), Outcome::Done(Response::default()));
    }

    #[test]
    fn ok_status_flags() {
        assert_eq!(ok_status(b"\x00\x00\x00\x0a\x00\x00\x00"), 0x000a);
        assert_eq!(ok_status(b"\xfe\x00\x00\x22\x00\x00\x00"), 0x0022);
        assert_eq!(ok_status(b"\x00\xfc"), 0);
    }
}
