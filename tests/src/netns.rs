//! Network namespaces the tests create: each plays one host, joined to others by veth pairs with
//! private addresses that exist only inside them. Deleted when dropped (after the processes the
//! test started in them, which are stopped by pid).

use std::{
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::wait_for;

/// A network namespace created with `ip netns add`, deleted on drop.
pub struct Netns {
    pub name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip (iproute2, installed by `cargo xtask setup`)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Netns {
    /// Creates namespace `name` (a stale one of that name, left by a killed run, is replaced)
    /// with its loopback up.
    pub fn create(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status();
        ip(&["netns", "add", name]);
        let ns = Netns { name: name.to_owned() };
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs inside this namespace (`ip netns exec`, which execs the program: the
    /// child's pid is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread that has entered this namespace (the caller's thread stays where it
    /// is).
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd; affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread inside the namespace")
    }

    /// Waits until something listens on `addr` inside this namespace, failing early when `child`
    /// exits.
    pub fn wait_listening(&self, addr: &str, child: &mut Child) {
        let addr = addr.to_owned();
        wait_for(Duration::from_secs(60), &format!("{addr} to listen in {}", self.name), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the process for {addr} exited with {status}");
            }
            let a = addr.clone();
            self.run_in(move || TcpStream::connect_timeout(&a.parse().unwrap(), Duration::from_secs(1)).is_ok())
                .then_some(())
        });
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Joins `a` and `b` with a veth pair named `<name>a` / `<name>b` (at most 14 bytes of `name`),
/// addresses `a_addr` and `b_addr` (CIDR), both ends up. The pair goes with the namespaces.
pub fn veth(name: &str, a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) {
    let (ea, eb) = (format!("{name}a"), format!("{name}b"));
    ip(&["link", "add", &ea, "type", "veth", "peer", "name", &eb]);
    ip(&["link", "set", &ea, "netns", &a.name]);
    ip(&["link", "set", &eb, "netns", &b.name]);
    ip(&["-n", &a.name, "addr", "add", a_addr, "dev", &ea]);
    ip(&["-n", &b.name, "addr", "add", b_addr, "dev", &eb]);
    ip(&["-n", &a.name, "link", "set", &ea, "up"]);
    ip(&["-n", &b.name, "link", "set", &eb, "up"]);
}
