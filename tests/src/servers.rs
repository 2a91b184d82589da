//! Real servers for the end-to-end tests, on loopback ports the tests choose: Debian's
//! redis-server and mariadbd, and the test's own Python HTTP services. Each is stopped by pid
//! when dropped, and its private data directory removed.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{daemon::free_port, netns::Netns, stop_child, wait_for};

/// A started server process, stopped by pid on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    dir: Option<PathBuf>,
    /// More scratch directories removed on drop.
    extra_dirs: Vec<PathBuf>,
}

impl Server {
    /// A server process started by the caller, stopped by pid on drop.
    pub fn from_child(child: Child, port: u16) -> Server {
        Server { child, port, dir: None, extra_dirs: Vec::new() }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        for d in self.dir.iter().chain(&self.extra_dirs) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn wait_port(port: u16, what: &str, child: &mut Child) {
    wait_for(Duration::from_secs(60), what, || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what}: the process exited with {status}");
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-e2e-{name}-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Debian's redis-server on a free loopback port, no persistence.
pub fn redis() -> Server {
    let port = free_port();
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting redis-server (installed by `cargo xtask setup`)");
    wait_port(port, "redis-server to listen", &mut child);
    Server { child, port, dir: None, extra_dirs: Vec::new() }
}

/// Debian's redis-server listening on a unix socket only (no TCP), no persistence: the socket's
/// path and the server (its `port` is 0).
pub fn redis_unix() -> (PathBuf, Server) {
    let dir = scratch_dir("redis-unix");
    let sock = dir.join("redis.sock");
    let mut child = Command::new("redis-server")
        .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .expect("starting redis-server (installed by `cargo xtask setup`)");
    wait_for(Duration::from_secs(60), "redis-server's unix socket", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("redis-server exited with {status}");
        }
        std::os::unix::net::UnixStream::connect(&sock).ok().map(|_| ())
    });
    (sock, Server { child, port: 0, dir: Some(dir), extra_dirs: Vec::new() })
}

impl Server {
    /// The server's unix socket (`mysqld.sock` of `mariadb()`).
    pub fn mysql_socket(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("mysqld.sock"))
    }
}

/// Debian's mariadbd with a private data directory, root without password on loopback, and a
/// database `shop` with a table `items`.
pub fn mariadb() -> Server {
    mariadb_with(&[])
}

/// A self-signed certificate and key for `localhost` made with `openssl` in `dir`: (cert, key).
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl (installed by `cargo xtask setup`)");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// `mariadb()` with TLS enabled (a self-signed certificate made with `openssl`).
pub fn mariadb_tls() -> Server {
    let dir = scratch_dir("mariadb-cert");
    let (cert, key) = self_signed_cert(&dir);
    let mut s = mariadb_with(&[format!("--ssl-cert={}", cert.display()), format!("--ssl-key={}", key.display())]);
    s.extra_dirs.push(dir);
    s
}

/// `mariadb()` with extra server arguments.
pub fn mariadb_with(extra: &[String]) -> Server {
    mariadb_on(None, extra)
}

/// `mariadb()` inside a test's network namespace, listening on `ip` port 3306.
pub fn mariadb_in(ns: &Netns, ip: &str) -> Server {
    mariadb_on(Some((ns, ip)), &[])
}

/// A command that runs on this host, or inside the namespace of `place`.
fn command_at(place: Option<(&Netns, &str)>, program: &str) -> Command {
    match place {
        Some((ns, _)) => ns.command(program),
        None => Command::new(program),
    }
}

fn mariadb_on(place: Option<(&Netns, &str)>, extra: &[String]) -> Server {
    let dir = scratch_dir("mariadb");
    let data = dir.join("data");
    let out = Command::new("mariadb-install-db")
        .args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"])
        .arg(format!("--datadir={}", data.display()))
        .output()
        .expect("running mariadb-install-db (installed by `cargo xtask setup`)");
    assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
    let (ip, port) = match place {
        Some((_, ip)) => (ip, 3306),
        None => ("127.0.0.1", free_port()),
    };
    let mut child = command_at(place, "mariadbd")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .args([&format!("--bind-address={ip}"), "--user=root", "--skip-log-bin", "--innodb-buffer-pool-size=16M"])
        .arg(format!("--port={port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting mariadbd");
    match place {
        Some((ns, _)) => ns.wait_listening(&format!("{ip}:{port}"), &mut child),
        None => wait_port(port, "mariadbd to listen", &mut child),
    }
    let schema = "CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40)); INSERT INTO shop.items VALUES (1, 'lamp'), (2, 'desk');";
    match place {
        // Root may log in only from loopback: set up through the socket, and let root in from
        // the namespace's private addresses.
        Some((ns, _)) => {
            let out = ns
                .command("mariadb")
                .args(["--no-defaults", "-u", "root"])
                .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
                .arg("-e")
                .arg(format!("CREATE USER root@'%'; GRANT ALL ON *.* TO root@'%'; {schema}"))
                .output()
                .expect("running the mariadb client");
            assert!(out.status.success(), "mariadb client: {}", String::from_utf8_lossy(&out.stderr));
        }
        None => sql_at(port, schema),
    }
    Server { child, port, dir: Some(dir), extra_dirs: Vec::new() }
}

/// Runs statements through the `mariadb` command-line client over TCP.
pub fn sql(server: &Server, statements: &str) {
    sql_at(server.port, statements)
}

fn sql_at(port: u16, statements: &str) {
    let out = Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-u",
            "root",
            "--skip-ssl",
            "-e",
            statements,
        ])
        .output()
        .expect("running the mariadb client");
    assert!(out.status.success(), "mariadb client: {}", String::from_utf8_lossy(&out.stderr));
}

/// Builds `tests/go/<name>.go` into a fresh temporary folder, in GOPATH mode with Debian's
/// golang-go and its `golang-*-dev` packages (installed by `cargo xtask setup`).
pub fn go_build(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-go-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("go/{name}.go"));
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOFLAGS", "-p=2")
        .output()
        .expect("running go build (Debian golang-go, installed by `cargo xtask setup`)");
    assert!(out.status.success(), "go build of {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    bin
}

/// The tests' Python helpers (`tests/python`).
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Starts `tests/python/<script>` with `args` and environment `env`, waiting for `port`.
pub fn python_service(script: &str, port: u16, args: &[String], env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new("python3");
    cmd.arg(python_dir().join(script)).arg("--port").arg(port.to_string()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::null()).spawn().expect("starting python3");
    wait_port(port, script, &mut child);
    Server { child, port, dir: None, extra_dirs: Vec::new() }
}

/// The chain of the span tests: service A (`tests/python/chain_service.py`) calling Debian's
/// redis-server, mariadb and service B; A and B are named `{prefix}-a` and `{prefix}-b`.
pub struct ChainServices {
    pub a: Server,
    pub b: Server,
    pub redis: Server,
    pub mysql: Server,
}

pub fn chain_services(prefix: &str) -> ChainServices {
    let redis = redis();
    let mysql = mariadb();
    let b = python_service("chain_service.py", free_port(), &[], &[("OTEL_SERVICE_NAME", &format!("{prefix}-b"))]);
    let args = vec![
        "--redis".to_string(),
        redis.port.to_string(),
        "--mysql".into(),
        mysql.port.to_string(),
        "--next".into(),
        b.port.to_string(),
    ];
    let a = python_service("chain_service.py", free_port(), &args, &[("OTEL_SERVICE_NAME", &format!("{prefix}-a"))]);
    ChainServices { a, b, redis, mysql }
}
