//! grpc-go in Go executables: where to probe and what the probes read. grpc-go's loopy writer
//! goroutine writes every frame of a connection and its reader goroutine reads them, so the
//! socket calls never show which goroutine makes a call or serves a request. Two functions do:
//! `(*http2Client).Write` runs in the goroutine that sends a message on a client stream, and
//! `(*Server).handleStream` in the one that runs a server stream's handler. The kernel program
//! `go_grpc_stream` reads the stream id and the connection's file descriptor at offsets taken
//! from the executable's DWARF, and checks interface values against the executable's own
//! interface tables (`go.itab.*` symbols) before it follows them.
//!
//! Followed: non-PIE executables (Go's default on linux/amd64) with symbols and DWARF, whose
//! connections are plain `*net.TCPConn`. Others are reported with the reason and keep the
//! goroutine rule without gRPC hand-offs.

use object::{Object, ObjectKind, ObjectSymbol};
use tracer_common as k;

/// The client-side function: the goroutine that sends a message on a stream.
const CLIENT_WRITE: &str = "google.golang.org/grpc/internal/transport.(*http2Client).Write";
/// The server-side function: the goroutine that runs a stream's handler.
const HANDLE_STREAM: &str = "google.golang.org/grpc.(*Server).handleStream";
const TRANSPORT: &str = "google.golang.org/grpc/internal/transport";

/// One probe to attach for a grpc-go build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcProbe {
    pub symbol: &'static str,
    /// File offset of the function's first instruction.
    pub offset: u64,
    /// What the kernel program reads (`GO_GRPC_PROBES`).
    pub layout: k::GoGrpcProbe,
}

/// What an executable holds of grpc-go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grpc {
    /// No grpc-go transport in it.
    Absent,
    /// Both sides (or the one it links) can be followed.
    Probes(Vec<GrpcProbe>),
    /// grpc-go is linked but its streams cannot be followed, and why.
    Unfollowed(&'static str),
}

/// Whether a symbol is `wanted`, or `wanted` under a longer (vendored) import path.
fn symbol_is(name: &str, wanted: &str) -> bool {
    name == wanted || name.strip_suffix(wanted).is_some_and(|p| p.ends_with('/'))
}

/// An interface table symbol (`go.itab.*T,I` before Go 1.20, `go:itab.*T,I` after).
fn itab_of(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("go.itab.").or_else(|| name.strip_prefix("go:itab."))?;
    rest.split_once(',')
}

/// The grpc-go probes of a Go executable (`file_len`: its size in bytes).
pub fn inspect(file: &object::File<'_>, file_len: usize) -> Grpc {
    let (mut write, mut handle, mut tcp_itab, mut server_itab) = (None, None, None, None);
    for sym in file.symbols() {
        let Ok(name) = sym.name() else { continue };
        if sym.address() == 0 {
            continue;
        }
        if symbol_is(name, CLIENT_WRITE) {
            write = Some(sym.address());
        } else if symbol_is(name, HANDLE_STREAM) {
            handle = Some(sym.address());
        } else if let Some((ty, iface)) = itab_of(name) {
            if ty == "*net.TCPConn" && iface == "net.Conn" {
                tcp_itab = Some(sym.address());
            } else if ty.strip_prefix('*').is_some_and(|t| symbol_is(t, &format!("{TRANSPORT}.http2Server")))
                && symbol_is(iface, &format!("{TRANSPORT}.ServerTransport"))
            {
                server_itab = Some(sym.address());
            }
        }
    }
    if write.is_none() && handle.is_none() {
        return Grpc::Absent;
    }
    if file.kind() != ObjectKind::Executable {
        // A position-independent executable: the interface tables' run-time addresses differ
        // from the file's.
        return Grpc::Unfollowed("position-independent executable");
    }
    let Some(conn_itab) = tcp_itab else { return Grpc::Unfollowed("no *net.TCPConn interface table") };
    let client_t = format!("{TRANSPORT}.http2Client");
    let server_t = format!("{TRANSPORT}.http2Server");
    let stream_t = format!("{TRANSPORT}.Stream");
    let off = super::golang::dwarf_members(
        file,
        &[
            (&stream_t, "id"),
            (&client_t, "conn"),
            (&server_t, "conn"),
            ("net.TCPConn", "conn"),
            ("net.conn", "fd"),
            ("net.netFD", "pfd"),
            ("internal/poll.FD", "Sysfd"),
        ],
    );
    let (Some(stream_id_off), Some(tcpconn_conn), Some(conn_fd), Some(pfd), Some(sysfd)) =
        (off[0], off[3], off[4], off[5], off[6])
    else {
        return Grpc::Unfollowed("no DWARF for the grpc-go and net structs");
    };
    let layout = |role, conn_off, transport_itab| k::GoGrpcProbe {
        role,
        stream_id_off,
        conn_off,
        netfd_off: tcpconn_conn + conn_fd,
        sysfd_off: pfd + sysfd,
        _pad: 0,
        transport_itab,
        conn_itab,
    };
    let mut probes = Vec::new();
    let at = |addr: Option<u64>| addr.and_then(|a| super::elf::file_offset(file, a, file_len));
    if let (Some(offset), Some(conn_off)) = (at(write), off[1]) {
        probes.push(GrpcProbe { symbol: CLIENT_WRITE, offset, layout: layout(k::GO_STREAM_CLIENT, conn_off, 0) });
    }
    if let (Some(offset), Some(conn_off), Some(itab)) = (at(handle), off[2], server_itab) {
        probes.push(GrpcProbe { symbol: HANDLE_STREAM, offset, layout: layout(k::GO_STREAM_SERVER, conn_off, itab) });
    }
    if probes.is_empty() {
        return Grpc::Unfollowed("grpc-go transport layout not found in DWARF");
    }
    Grpc::Probes(probes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(symbol_is(CLIENT_WRITE, CLIENT_WRITE));
        assert!(symbol_is(&format!("example.com/app/vendor/{CLIENT_WRITE}"), CLIENT_WRITE));
        assert!(!symbol_is(&format!("x{CLIENT_WRITE}"), CLIENT_WRITE));
        assert_eq!(itab_of("go.itab.*net.TCPConn,net.Conn"), Some(("*net.TCPConn", "net.Conn")));
        assert_eq!(itab_of("go:itab.*net.TCPConn,net.Conn"), Some(("*net.TCPConn", "net.Conn")));
        assert_eq!(itab_of("net.(*TCPConn).Read"), None);
    }

    #[test]
    fn other_programs_have_no_grpc() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        let file = object::File::parse(&*me).unwrap();
        assert_eq!(inspect(&file, me.len()), Grpc::Absent);
    }

    /// Builds the tests' grpc-go program with Debian's Go when it is installed: both probes are
    /// found, with the layout grpc-go 1.33 and Go 1.19 have (DWARF), and none once stripped.
    #[test]
    fn finds_both_sides_in_a_grpc_go_program_when_go_is_installed() {
        use crate::uprobes::golang::tests::{go_build, have_go};
        if !have_go() {
            return;
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/go/grpc_demo.go");
        let dir = std::env::temp_dir().join(format!("tracer-grpcgo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let build = |out: &str, flags: &[&str]| go_build(&src, &dir, out, flags);
        let full = build("full", &[]);
        let stripped = build("stripped", &["-ldflags=-s -w"]);
        let _ = std::fs::remove_dir_all(&dir);
        let Grpc::Probes(probes) = inspect(&object::File::parse(&*full).unwrap(), full.len()) else {
            panic!("no probes")
        };
        let symbols: Vec<&str> = probes.iter().map(|p| p.symbol).collect();
        assert_eq!(symbols, [CLIENT_WRITE, HANDLE_STREAM]);
        for p in &probes {
            let l = p.layout;
            assert!(p.offset > 0);
            assert_eq!((l.stream_id_off, l.netfd_off, l.sysfd_off), (0, 0, 16), "{l:?}");
            assert!(l.conn_off > 0 && l.conn_itab != 0, "{l:?}");
        }
        assert_eq!(probes[0].layout.transport_itab, 0, "the client's receiver is concrete");
        assert!(probes[1].layout.transport_itab != 0 && probes[1].layout.transport_itab != probes[1].layout.conn_itab);
        assert_eq!(
            inspect(&object::File::parse(&*stripped).unwrap(), stripped.len()),
            Grpc::Absent,
            "no symbols: nothing to find"
        );
    }
}
