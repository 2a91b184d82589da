//! Socket capture end to end: real probes, a loopback TCP client and server in this process
//! exchanging known bytes through every traced syscall variant, over IPv4, IPv6 and
//! IPv4-mapped IPv6. Asserts tuples, roles, byte counts, captured bytes, pid/tid, order and close.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::RawFd,
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{daemon::Daemon, gettid, wait_for};

const TIMEOUT: Duration = Duration::from_secs(20);

fn check(rc: isize, what: &str) -> isize {
    if rc < 0 {
        panic!("{what}: {}", std::io::Error::last_os_error());
    }
    rc
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_storage is valid; we fill the family-specific view.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn local_addr(fd: RawFd) -> SocketAddr {
    // SAFETY: getsockname into a zeroed storage of the right size.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        check(libc::getsockname(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) as isize, "getsockname");
        match ss.ss_family as i32 {
            libc::AF_INET => {
                let a = *(&ss as *const _ as *const libc::sockaddr_in);
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes())), u16::from_be(a.sin_port))
            }
            _ => {
                let a = *(&ss as *const _ as *const libc::sockaddr_in6);
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                SocketAddr::new(IpAddr::V6(ip).to_canonical(), u16::from_be(a.sin6_port))
            }
        }
    }
}

/// A listening socket of `family` bound to `addr` (port 0).
fn listen(family: i32, addr: SocketAddr) -> RawFd {
    // SAFETY: plain socket calls on fds we own.
    unsafe {
        let fd = check(libc::socket(family, libc::SOCK_STREAM, 0) as isize, "socket") as RawFd;
        let (ss, len) = sockaddr(addr);
        check(libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) as isize, "bind");
        check(libc::listen(fd, 16) as isize, "listen");
        fd
    }
}

/// A connected (client, server) pair: the client socket of `family` connects to `target`.
fn connect_pair(listener: RawFd, family: i32, target: SocketAddr, nonblocking: bool) -> (RawFd, RawFd, i32) {
    // SAFETY: plain socket calls on fds we own.
    unsafe {
        let mut ty = libc::SOCK_STREAM;
        if nonblocking {
            ty |= libc::SOCK_NONBLOCK;
        }
        let c = check(libc::socket(family, ty, 0) as isize, "socket") as RawFd;
        let (ss, len) = sockaddr(target);
        let rc = libc::connect(c, &ss as *const _ as *const libc::sockaddr, len);
        let errno = if rc < 0 { std::io::Error::last_os_error().raw_os_error().unwrap_or(0) } else { 0 };
        if nonblocking {
            assert_eq!(errno, libc::EINPROGRESS, "a non-blocking connect reports EINPROGRESS");
            let mut p = libc::pollfd { fd: c, events: libc::POLLOUT, revents: 0 };
            check(libc::poll(&mut p, 1, 5000) as isize, "poll");
            let flags = libc::fcntl(c, libc::F_GETFL);
            libc::fcntl(c, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        } else {
            assert_eq!(rc, 0, "connect");
        }
        let s =
            check(libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), 0) as isize, "accept4") as RawFd;
        (c, s, errno)
    }
}

/// One exchange: which call sends, which receives, and the bytes.
struct Step {
    send: &'static str,
    recv: &'static str,
    data: &'static [u8],
}

const STEPS: &[Step] = &[
    Step { send: "write", recv: "read", data: b"write->read hello" },
    Step { send: "sendto", recv: "recvfrom", data: b"send->recv (libc send and recv are sendto/recvfrom)" },
    Step { send: "sendmsg", recv: "recvmsg", data: b"sendmsg with two iovecs -> recvmsg" },
    Step { send: "writev", recv: "readv", data: b"writev with three iovecs -> readv" },
];

fn do_send(fd: RawFd, call: &str, data: &[u8]) {
    // SAFETY: buffers outlive the calls; iovecs point into `data`.
    let n = unsafe {
        match call {
            "write" => libc::write(fd, data.as_ptr().cast(), data.len()),
            "sendto" => libc::send(fd, data.as_ptr().cast(), data.len(), 0),
            "sendmsg" => {
                let (a, b) = data.split_at(7);
                let mut iov = [
                    libc::iovec { iov_base: a.as_ptr() as *mut _, iov_len: a.len() },
                    libc::iovec { iov_base: b.as_ptr() as *mut _, iov_len: b.len() },
                ];
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = iov.as_mut_ptr();
                msg.msg_iovlen = 2;
                libc::sendmsg(fd, &msg, 0)
            }
            "writev" => {
                let (a, rest) = data.split_at(3);
                let (b, c) = rest.split_at(10);
                let iov = [
                    libc::iovec { iov_base: a.as_ptr() as *mut _, iov_len: a.len() },
                    libc::iovec { iov_base: b.as_ptr() as *mut _, iov_len: b.len() },
                    libc::iovec { iov_base: c.as_ptr() as *mut _, iov_len: c.len() },
                ];
                libc::writev(fd, iov.as_ptr(), 3)
            }
            other => panic!("unknown send call {other}"),
        }
    };
    assert_eq!(check(n, call) as usize, data.len(), "{call} wrote everything");
}

fn do_recv(fd: RawFd, call: &str, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    // SAFETY: buffers outlive the calls; iovecs point into `buf`.
    let n = unsafe {
        match call {
            "read" => libc::read(fd, buf.as_mut_ptr().cast(), len),
            "recvfrom" => libc::recv(fd, buf.as_mut_ptr().cast(), len, libc::MSG_WAITALL),
            "recvmsg" => {
                let (a, b) = buf.split_at_mut(5);
                let mut iov = [
                    libc::iovec { iov_base: a.as_mut_ptr().cast(), iov_len: a.len() },
                    libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() },
                ];
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = iov.as_mut_ptr();
                msg.msg_iovlen = 2;
                libc::recvmsg(fd, &mut msg, libc::MSG_WAITALL)
            }
            "readv" => {
                let (a, b) = buf.split_at_mut(4);
                let iov = [
                    libc::iovec { iov_base: a.as_mut_ptr().cast(), iov_len: a.len() },
                    libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() },
                ];
                libc::readv(fd, iov.as_ptr(), 2)
            }
            other => panic!("unknown recv call {other}"),
        }
    };
    assert_eq!(check(n, call) as usize, len, "{call} read everything");
    buf
}

fn close(fd: RawFd) {
    // SAFETY: closing an fd we own.
    unsafe { libc::close(fd) };
}

/// Events of one kind for a connection, in ring-buffer order.
fn events_for<'a>(all: &'a [Value], conn_id: u64, event: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["event"] == event && e["conn_id"].as_u64() == Some(conn_id)).collect()
}

fn conn_event<'a>(all: &'a [Value], kind: &str, pid: u32, local: SocketAddr) -> Option<&'a Value> {
    all.iter().find(|e| {
        e["event"] == "conn" && e["kind"] == kind && e["pid"] == pid && e["tuple"]["local"] == local.to_string()
    })
}

/// Runs every step in both directions over one connection and checks everything the daemon saw.
fn exchange_and_check(d: &Daemon, family: i32, listen_addr: SocketAddr, target: SocketAddr) {
    let listener = listen(if listen_addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 }, listen_addr);
    let server_addr = local_addr(listener);
    let target = SocketAddr::new(target.ip(), server_addr.port());
    let (c, s, _) = connect_pair(listener, family, target, false);
    let client_addr = local_addr(c);
    let tid = gettid();
    let pid = std::process::id();
    for step in STEPS {
        do_send(c, step.send, step.data);
        assert_eq!(do_recv(s, step.recv, step.data.len()), step.data);
        do_send(s, step.send, step.data);
        assert_eq!(do_recv(c, step.recv, step.data.len()), step.data);
    }
    close(c);
    close(s);
    close(listener);

    // Each side: connect/accept, 8 data events, close.
    let all = wait_for(TIMEOUT, "both sides' data and close events", || {
        let all = d.json_lines();
        let cc = conn_event(&all, "connect", pid, client_addr)?["conn_id"].as_u64()?;
        let sc = conn_event(&all, "accept", pid, server_addr)?["conn_id"].as_u64()?;
        let done = [cc, sc].iter().all(|id| {
            events_for(&all, *id, "data").len() >= 2 * STEPS.len()
                && all
                    .iter()
                    .any(|e| e["event"] == "conn" && e["kind"] == "close" && e["conn_id"].as_u64() == Some(*id))
        });
        done.then_some(all)
    });

    let connect = conn_event(&all, "connect", pid, client_addr).unwrap();
    let accept = conn_event(&all, "accept", pid, server_addr).unwrap();
    assert_eq!(connect["tuple"]["remote"], server_addr.to_string(), "client tuple's remote is the server");
    assert_eq!(accept["tuple"]["remote"], client_addr.to_string(), "server tuple's remote is the client");
    assert_eq!(connect["fd"], c);
    assert_eq!(accept["fd"], s);
    assert_eq!(accept["syscall"], "accept4");
    assert_eq!(connect["ret"], 0);
    assert_eq!((connect["tid"].as_u64(), accept["tid"].as_u64()), (Some(tid as u64), Some(tid as u64)));

    for (role_event, fd, local, remote) in
        [(connect, c, client_addr, server_addr), (accept, s, server_addr, client_addr)]
    {
        let id = role_event["conn_id"].as_u64().unwrap();
        let data = events_for(&all, id, "data");
        assert_eq!(data.len(), 2 * STEPS.len(), "exactly the data calls made on fd {fd}");
        let is_client = fd == c;
        let mut last_ts = 0;
        for (i, e) in data.iter().enumerate() {
            let step = &STEPS[i / 2];
            // The client sends first, then receives; the server the other way round.
            let sending = (i % 2 == 0) == is_client;
            let (call, dir) = if sending { (step.send, "egress") } else { (step.recv, "ingress") };
            assert_eq!(e["syscall"], call, "event {i} on fd {fd}");
            assert_eq!(e["direction"], dir, "event {i} on fd {fd}");
            assert_eq!(e["ret"].as_u64(), Some(step.data.len() as u64), "bytes moved by {call}");
            assert_eq!(e["payload"], step.data.escape_ascii().to_string(), "captured bytes of {call}");
            assert_eq!(e["truncated"], false);
            assert_eq!(
                (e["pid"].as_u64(), e["tid"].as_u64(), e["fd"].as_i64()),
                (Some(pid as u64), Some(tid as u64), Some(fd as i64))
            );
            assert_eq!(e["tuple"]["local"], local.to_string());
            assert_eq!(e["tuple"]["remote"], remote.to_string());
            let (enter, exit) = (e["ts_enter_ns"].as_u64().unwrap(), e["ts_exit_ns"].as_u64().unwrap());
            assert!(enter <= exit && enter >= last_ts, "timestamps ordered on fd {fd}");
            last_ts = exit;
        }
        let close = all
            .iter()
            .find(|e| e["event"] == "conn" && e["kind"] == "close" && e["conn_id"].as_u64() == Some(id))
            .unwrap();
        assert_eq!(close["fd"], fd);
        assert!(close["ts_exit_ns"].as_u64().unwrap() >= last_ts, "close comes after the data");
    }
}

fn this_process() -> String {
    std::process::id().to_string()
}

#[test]
fn ipv4_every_syscall_variant_both_sides() {
    let d = Daemon::start(&["--print-events", "--include-pid", &this_process()]);
    let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
    exchange_and_check(&d, libc::AF_INET, lo, lo);
}

#[test]
fn ipv4_every_syscall_variant_through_classic_syscall_tracepoints() {
    let d = Daemon::start(&["--print-events", "--include-pid", &this_process(), "--syscall-hook", "tracepoint"]);
    let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
    exchange_and_check(&d, libc::AF_INET, lo, lo);
    assert_eq!(d.metric("tracer_probe_attached{probe=\"tp_sys_enter\"}"), 1.0, "classic entry hook attached");
    assert_eq!(d.metric("tracer_probe_attached{probe=\"tp_sys_exit\"}"), 1.0, "classic exit hook attached");
}

#[test]
fn ipv6_every_syscall_variant_both_sides() {
    let d = Daemon::start(&["--print-events", "--include-pid", &this_process()]);
    let lo: SocketAddr = "[::1]:0".parse().unwrap();
    exchange_and_check(&d, libc::AF_INET6, lo, lo);
}

#[test]
fn ipv4_mapped_ipv6_client_is_reported_with_ipv4_addresses() {
    let d = Daemon::start(&["--print-events", "--include-pid", &this_process()]);
    let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mapped = SocketAddr::new(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), 0);
    exchange_and_check(&d, libc::AF_INET6, lo, mapped);
}

#[test]
fn nonblocking_connect_is_reported_and_its_completion_seen() {
    let d = Daemon::start(&["--print-events", "--include-pid", &this_process()]);
    let listener = listen(libc::AF_INET, "127.0.0.1:0".parse().unwrap());
    let target = local_addr(listener);
    let (c, s, errno) = connect_pair(listener, libc::AF_INET, target, true);
    assert_eq!(errno, libc::EINPROGRESS);
    let client_addr = local_addr(c);
    do_send(c, "write", b"after nonblocking connect");
    do_recv(s, "read", 25);
    let (connect, state) = wait_for(TIMEOUT, "connect and established events", || {
        let all = d.json_lines();
        let connect = conn_event(&all, "connect", std::process::id(), client_addr)?.clone();
        let id = connect["conn_id"].as_u64()?;
        let state = all
            .iter()
            .find(|e| e["event"] == "state" && e["conn_id"].as_u64() == Some(id) && e["new_state"] == 1)?
            .clone();
        Some((connect, state))
    });
    assert_eq!(connect["ret"], -libc::EINPROGRESS as i64, "connect returned -EINPROGRESS");
    assert_eq!(state["old_state"], 2, "SYN_SENT -> ESTABLISHED");
    assert_eq!(state["tuple"]["local"], client_addr.to_string());
    close(c);
    close(s);
    close(listener);
}

#[test]
fn large_write_is_truncated_to_the_capture_size_and_flagged() {
    let d = Daemon::start(&["--print-events", "--include-pid", &this_process(), "--capture-bytes", "1000"]);
    let listener = listen(libc::AF_INET, "127.0.0.1:0".parse().unwrap());
    let (c, s, _) = connect_pair(listener, libc::AF_INET, local_addr(listener), false);
    let client_addr = local_addr(c);
    let big: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    // SAFETY: buffer outlives the call.
    let n = unsafe { libc::write(c, big.as_ptr().cast(), big.len()) };
    assert_eq!(n, 3000);
    let mut got = 0;
    while got < 3000 {
        got += do_recv(s, "read", 1).len();
    }
    let e = wait_for(TIMEOUT, "the large write", || {
        d.json_lines()
            .into_iter()
            .find(|e| e["event"] == "data" && e["syscall"] == "write" && e["tuple"]["local"] == client_addr.to_string())
    });
    assert_eq!(e["ret"], 3000);
    assert_eq!(e["truncated"], true);
    assert_eq!(e["payload"], big[..1000].escape_ascii().to_string());
    close(c);
    close(s);
    close(listener);
}

/// A process whose command name (the name it was executed as) is excluded produces no events;
/// another one does, and the server in this process sees both.
#[test]
fn excluded_process_produces_no_events() {
    let dir = std::env::temp_dir().join(format!("tracer-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["tr-included", "tr-excluded"] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/bin/bash", &link).unwrap();
    }
    let d = Daemon::start(&["--print-events", "--exclude-comm", "tr-excluded"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut pids = Vec::new();
    for name in ["tr-included", "tr-excluded"] {
        let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'hello from {name}' >&3; exec 3>&-");
        let mut child = std::process::Command::new(dir.join(name)).args(["-c", &script]).spawn().unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut conn, &mut buf).unwrap();
        assert_eq!(buf, format!("hello from {name}"));
        pids.push(child.id());
        child.wait().unwrap();
    }
    let all = wait_for(TIMEOUT, "the included client's write and both server reads", || {
        let all = d.json_lines();
        let included_write = all.iter().any(|e| e["pid"] == pids[0] && e["payload"] == "hello from tr-included");
        let server_reads = all
            .iter()
            .filter(|e| e["pid"] == std::process::id() && e["event"] == "data" && e["direction"] == "ingress")
            .filter(|e| e["payload"].as_str().is_some_and(|p| p.starts_with("hello from")))
            .count();
        (included_write && server_reads == 2).then_some(all)
    });
    assert!(!all.iter().any(|e| e["pid"] == pids[1]), "the excluded process (pid {}) produced events", pids[1]);
    assert!(d.metric("tracer_kernel_events_total{counter=\"filtered\"}") >= 1.0, "filtered calls are counted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sendfile_is_counted_and_the_daemon_never_traces_itself() {
    let d = Daemon::start(&["--print-events"]);
    let listener = listen(libc::AF_INET, "127.0.0.1:0".parse().unwrap());
    let (c, s, _) = connect_pair(listener, libc::AF_INET, local_addr(listener), false);
    let path = std::env::temp_dir().join(format!("tracer-sendfile-{}", std::process::id()));
    std::fs::write(&path, b"file body sent with sendfile").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    // SAFETY: valid fds; null offset uses the file position.
    let n = unsafe { libc::sendfile(c, std::os::fd::AsRawFd::as_raw_fd(&file), std::ptr::null_mut(), 28) };
    assert_eq!(n, 28);
    do_recv(s, "read", 28);
    wait_for(TIMEOUT, "the sendfile counter", || {
        (d.metric("tracer_kernel_events_total{counter=\"sendfile\"}") >= 1.0).then_some(())
    });
    // The admin endpoint was just scraped over TCP: none of it may come from the daemon's pid.
    let daemon_pid = d.pid();
    assert!(!d.json_lines().iter().any(|e| e["pid"] == daemon_pid), "the daemon traced its own sockets");
    // Every kernel program has its error series, attached or not.
    let metrics = d.metrics();
    for program in tracer_common::PROGRAM_NAMES {
        let series = format!("tracer_kernel_program_errors_total{{program=\"{program}\"}} ");
        assert!(metrics.lines().any(|l| l.starts_with(&series)), "{series} missing from /metrics");
    }
    close(c);
    close(s);
    close(listener);
    let _ = std::fs::remove_file(&path);
}

/// One write from a fresh client to `listener`, read by the server side.
fn send_once(listener: &std::net::TcpListener, msg: &str) {
    let mut c = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    std::io::Write::write_all(&mut c, msg.as_bytes()).unwrap();
    let mut buf = vec![0u8; msg.len()];
    std::io::Read::read_exact(&mut s, &mut buf).unwrap();
}

#[test]
fn port_filters_keep_only_the_included_port_and_drop_the_excluded_one() {
    let traced = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (tp, op) = (traced.local_addr().unwrap().port(), other.local_addr().unwrap().port());
    let tp_s = tp.to_string();
    let d = Daemon::start(&["--print-events", "--include-port", &tp_s]);
    send_once(&traced, "to the included port");
    send_once(&other, "to another port");
    let all = wait_for(TIMEOUT, "the write to the included port", || {
        let all = d.json_lines();
        all.iter().any(|e| e["payload"] == "to the included port").then_some(all)
    });
    let on_other = |e: &&serde_json::Value| e["tuple"].to_string().contains(&format!(":{op}\""));
    assert!(!all.iter().any(|e| e["payload"] == "to another port"), "traffic to port {op} was captured");
    assert!(!all.iter().any(|e| on_other(&e)), "events for port {op} were reported");
    drop(d);

    // Exclusion: the excluded port's traffic is dropped, the rest is kept.
    let d = Daemon::start(&["--print-events", "--exclude-port", &tp_s]);
    send_once(&traced, "to the excluded port");
    send_once(&other, "to a kept port");
    let all = wait_for(TIMEOUT, "the write to the kept port", || {
        let all = d.json_lines();
        all.iter().any(|e| e["payload"] == "to a kept port").then_some(all)
    });
    assert!(
        !all.iter().any(|e| e["payload"] == "to the excluded port"),
        "traffic to the excluded port {tp} was captured"
    );
}

/// The benchmark floors load in place of the tracer's programs: `minimal` records each data
/// call of the traced process on a TCP socket once, `null` records nothing, and neither traces
/// anything. The traced process is a Python child named `floorcheck`, so that this test's own
/// scrapes of `/metrics` are not traced.
#[test]
fn benchmark_floors_record_one_record_per_data_call_and_trace_nothing() {
    const CALLS: usize = 50;
    let script = format!(
        "import ctypes, socket\n\
         ctypes.CDLL(None).prctl(15, b'floorcheck', 0, 0, 0)\n\
         l = socket.create_server(('127.0.0.1', 0))\n\
         c = socket.create_connection(l.getsockname())\n\
         s, _ = l.accept()\n\
         for _ in range({CALLS}):\n    c.sendall(b'0123456789abcdef')\n    assert s.recv(16) == b'0123456789abcdef'\n"
    );
    for (floor, per_call) in [("minimal", 1.0), ("null", 0.0)] {
        let d = Daemon::start(&["--print-events", "--probe-floor", floor, "--include-comm", "floorcheck"]);
        let metrics = d.metrics();
        for hook in ["sys_enter", "sys_exit", "inet_sock_set_state", "sched_process_exit"] {
            assert!(
                metrics.lines().any(|l| l.starts_with("tracer_probe_attached{probe=\"floor_")
                    && l.contains(hook)
                    && l.ends_with(" 1")),
                "{floor}: no floor program attached to {hook}:\n{metrics}"
            );
        }
        let status = std::process::Command::new("python3").args(["-c", &script]).status().unwrap();
        assert!(status.success(), "the Python exchange failed");
        let want = (2 * CALLS) as f64 * per_call;
        if per_call > 0.0 {
            wait_for(TIMEOUT, "the floor's records", || (d.metric("tracer_floor_records_total") >= want).then_some(()));
        }
        assert_eq!(d.metric("tracer_floor_records_total"), want, "{floor}: one record per send and per recv");
        assert_eq!(d.metric("tracer_events_total{kind=\"data\"}"), 0.0, "{floor}: the tracer's programs ran");
        assert!(d.json_lines().is_empty(), "{floor}: a floor printed events: {:?}", d.json_lines());
    }
}

/// A read with `MSG_PEEK` leaves the bytes where they are (curl peeks before it reuses a
/// connection): it is not captured, so the bytes are seen once, from the read that consumes
/// them, through either syscall hook.
#[test]
fn peeking_reads_are_not_taken_as_consumed_bytes() {
    let me = this_process();
    for hook in ["raw", "tracepoint"] {
        let d = Daemon::start(&["--print-events", "--include-pid", &me, "--syscall-hook", hook]);
        let listener = listen(libc::AF_INET, "127.0.0.1:0".parse().unwrap());
        let (c, s, _) = connect_pair(listener, libc::AF_INET, local_addr(listener), false);
        let server_local = local_addr(s);
        do_send(c, "write", b"peek-then-read!!");
        let mut one = [0u8; 4];
        // SAFETY: the buffer outlives the calls.
        unsafe {
            assert_eq!(libc::recv(s, one.as_mut_ptr().cast(), 1, libc::MSG_PEEK), 1);
            let mut iov = libc::iovec { iov_base: one.as_mut_ptr().cast(), iov_len: 4 };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            assert_eq!(libc::recvmsg(s, &mut msg, libc::MSG_PEEK), 4);
        }
        assert_eq!(do_recv(s, "recvfrom", 16), b"peek-then-read!!");
        let events = wait_for(TIMEOUT, "the server's read", || {
            let all = d.json_lines();
            let conn = conn_event(&all, "accept", std::process::id(), server_local)?["conn_id"].as_u64()?;
            let reads: Vec<Value> =
                events_for(&all, conn, "data").into_iter().filter(|e| e["direction"] == "ingress").cloned().collect();
            (!reads.is_empty()).then_some(reads)
        });
        assert_eq!(events.len(), 1, "{hook}: only the consuming read: {events:#?}");
        assert_eq!(events[0]["ret"], 16, "{hook}");
        assert_eq!(events[0]["payload"], "peek-then-read!!", "{hook}");
        assert!(d.metric("tracer_kernel_events_total{counter=\"peeked\"}") >= 2.0, "{hook}: peeks are counted");
        close(c);
        close(s);
        close(listener);
    }
}
