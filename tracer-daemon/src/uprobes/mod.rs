//! Client-library uprobes: finds every loaded copy of hiredis, libmysqlclient and libmariadb
//! (shared libraries by name, and executables that carry one statically, by their symbols) in
//! every process, containers included (files are reached through `/proc/PID/root`), and keeps
//! one set of probes attached per distinct file (device, inode). A rescan about once a second
//! covers new processes (exec) and libraries loaded later (dlopen); a file no process maps any
//! more is detached.
//!
//! A call is tied to its connection by the socket events of the same thread during the call, not
//! by reading `redisContext` / `MYSQL` (their layouts change between versions): see
//! `assemble::library`.
//!
//! The same scan finds Go executables (`golang`) and tells the kernel which processes run one
//! and where their goroutine id lives (`GO_PROCESSES`), so that their calls are keyed by
//! goroutine. In those that link grpc-go it attaches `go_grpc_stream` (`grpcgo`), which names
//! the goroutine that makes each gRPC call and the one that serves each gRPC request.

pub mod attach;
pub mod elf;
pub mod golang;
pub mod grpcgo;
pub mod negative;
pub mod symbols;

use std::{
    collections::HashMap,
    os::{
        fd::{AsFd, OwnedFd},
        unix::fs::MetadataExt,
    },
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData},
    programs::UProbe,
};
use tracer_common as k;

use crate::{
    metrics::{Counter, Gauge, Registry},
    reader::decode::Library,
};

/// How often `/proc` is rescanned.
pub const RESCAN: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum UprobeError {
    #[error("uprobe program {0} is missing from the kernel object")]
    MissingProgram(&'static str),
    #[error("loading uprobe program {program}: {reason}")]
    Load { program: &'static str, reason: String },
    #[error("the kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe): {0}")]
    Pmu(std::io::Error),
}

/// A file identity: device and inode as `/proc/PID/maps` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub inode: u64,
}

/// A mapped file worth a look, as found in one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub key: FileKey,
    pub pid: u32,
    /// Path inside the process's mount namespace.
    pub path: String,
    /// The library its name says it is; `None` for an executable (searched for symbols).
    pub library: Option<Library>,
}

/// Parses `major:minor` (hex) as `/proc/PID/maps` prints it into the kernel's `dev_t` encoding
/// used by `stat` (`st_dev`).
fn parse_dev(s: &str) -> Option<u64> {
    let (maj, min) = s.split_once(':')?;
    let (maj, min) = (u64::from_str_radix(maj, 16).ok()?, u64::from_str_radix(min, 16).ok()?);
    Some(((maj & 0xfff) << 8) | ((maj & !0xfff) << 32) | (min & 0xff) | ((min & !0xff) << 12))
}

/// The executable mappings of one process worth a look: traced libraries by name, and the
/// process's own executable (`exe`, the target of `/proc/PID/exe`).
pub fn candidates_in_maps(pid: u32, maps: &str, exe: Option<&str>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(_range), Some(perms), Some(_off), Some(dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if !perms.contains('x') {
            continue;
        }
        let path: String = f.collect::<Vec<_>>().join(" ");
        if !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        let (Some(dev), Ok(inode)) = (parse_dev(dev), inode.parse::<u64>()) else { continue };
        if inode == 0 {
            continue;
        }
        let library = elf::library_of_path(&path);
        if library.is_none() && exe != Some(path.as_str()) {
            continue;
        }
        let key = FileKey { dev, inode };
        if out.iter().any(|c| c.key == key) {
            continue;
        }
        out.push(Candidate { key, pid, path, library });
    }
    out
}

/// Probes attached in one file.
struct FileProbes {
    path: String,
    links: Vec<attach::Attached>,
    /// Entries of `GO_GRPC_PROBES` its grpc-go probes read (removed with them).
    grpc_ids: Vec<u32>,
}

/// What became of a file looked at once.
enum Seen {
    Attached(FileProbes),
    /// No traced library in it (or it could not be read): not looked at again while mapped.
    Nothing,
}

struct Programs {
    pmu: attach::Pmu,
    enter: OwnedFd,
    exit: OwnedFd,
    append: OwnedFd,
    /// `go_grpc_stream`; `None` when it could not be loaded (logged: gRPC hand-offs are not
    /// followed).
    grpc: Option<OwnedFd>,
}

/// The discovery thread; dropping it stops the thread and detaches every probe.
pub struct Uprobes {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Uprobes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Loads the library programs of `ebpf` (they stay in the object; the discovery thread holds
/// copies of their descriptors).
fn load_programs(ebpf: &mut Ebpf) -> Result<Programs, UprobeError> {
    let mut load = |name: &'static str| -> Result<OwnedFd, UprobeError> {
        let prog = ebpf.program_mut(name).ok_or(UprobeError::MissingProgram(name))?;
        let p: &mut UProbe =
            prog.try_into().map_err(|e| UprobeError::Load { program: name, reason: format!("{e}") })?;
        p.load().map_err(|e| UprobeError::Load { program: name, reason: format!("{e}") })?;
        let fd = p.fd().map_err(|e| UprobeError::Load { program: name, reason: format!("{e}") })?;
        fd.as_fd().try_clone_to_owned().map_err(|e| UprobeError::Load { program: name, reason: format!("{e}") })
    };
    let enter = load(k::PROG_LIB_ENTER)?;
    let exit = load(k::PROG_LIB_EXIT)?;
    let append = load(k::PROG_HIREDIS_APPEND)?;
    let grpc = load(k::PROG_GO_GRPC_STREAM)
        .inspect_err(|e| tracing::warn!(error = %e, "grpc-go stream probe not loaded: gRPC calls of Go programs are not followed to their goroutines"))
        .ok();
    let pmu = attach::Pmu::detect().map_err(UprobeError::Pmu)?;
    Ok(Programs { pmu, enter, exit, append, grpc })
}

struct Metrics {
    files: Gauge,
    probes: Gauge,
    failures: Counter,
    scans: Counter,
    /// Files not read again because a negative result was remembered.
    skipped: Counter,
    go_processes: Gauge,
}

/// Go processes told to the kernel.
struct GoProcesses {
    /// `GO_PROCESSES`; `None` when the kernel object has no such map.
    map: Option<BpfHashMap<MapData, u32, k::GoProcess>>,
    /// Executables looked at: the `goid` offset of Go ones whose layout is known, `None` for
    /// the others.
    files: HashMap<FileKey, Option<u32>>,
    /// Processes in the map, with the executable they ran when entered.
    pids: HashMap<u32, FileKey>,
    /// Go processes the map had no room for (logged and counted once each).
    failed: std::collections::HashSet<u32>,
    /// `GO_GRPC_PROBES`; `None` when the kernel object has no such map.
    grpc: Option<BpfHashMap<MapData, u32, k::GoGrpcProbe>>,
    /// The next `GO_GRPC_PROBES` key.
    next_grpc_id: u32,
}

/// Starts discovery: a first scan before returning (so that clients already running are traced
/// when the daemon says it is ready), then a rescan every `RESCAN` on the thread of the stage
/// `uprobe scanner`.
pub fn start(
    ebpf: &mut Ebpf,
    registry: &Arc<Registry>,
    stages: &crate::supervise::Stages,
) -> Result<Uprobes, UprobeError> {
    let progs = load_programs(ebpf)?;
    let metrics = Metrics {
        files: registry.gauge(
            "tracer_uprobe_files_attached",
            "Distinct files (device, inode) with client-library probes attached",
            &[],
        ),
        probes: registry.gauge("tracer_uprobes_attached", "Client-library uprobes and uretprobes attached", &[]),
        failures: registry.counter(
            "tracer_uprobe_failures_total",
            "Client-library probes or files that could not be attached or read (see the daemon log)",
            &[],
        ),
        scans: registry.counter("tracer_uprobe_scans_total", "Scans of /proc for client libraries", &[]),
        skipped: registry.counter(
            "tracer_uprobe_files_skipped_total",
            "Mapped files not read again: an earlier look found no client library in the same version (device, inode, mtime, size)",
            &[],
        ),
        go_processes: registry.gauge(
            "tracer_go_processes",
            "Go processes whose calls the kernel keys by goroutine (their executable's goid offset is known)",
            &[],
        ),
    };
    let negative = negative::NegativeCache::new(
        negative::MAX_NEGATIVE,
        registry.counter(
            "tracer_uprobe_negative_evicted_total",
            "Remembered negative results (files without a client library) evicted, least recently seen first, beyond the bound",
            &[],
        ),
    );
    let bytes = crate::metrics::Structure::UprobeCache.gauge(registry);
    let map = ebpf.take_map(k::MAP_GO_PROCESSES).and_then(|m| BpfHashMap::try_from(m).ok());
    if map.is_none() {
        tracing::warn!("the kernel object has no Go process map: Go programs keep thread causality");
    }
    let grpc = ebpf.take_map(k::MAP_GO_GRPC_PROBES).and_then(|m| BpfHashMap::try_from(m).ok());
    let go = GoProcesses {
        map,
        files: HashMap::new(),
        pids: HashMap::new(),
        failed: Default::default(),
        grpc,
        next_grpc_id: 1,
    };
    let mut state =
        Discovery { progs, files: HashMap::new(), negative, metrics, bytes, own_pid: std::process::id(), go };
    state.scan();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = stages
        .thread("uprobe scanner", move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(RESCAN);
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                state.scan();
            }
        })
        .map_err(|e| UprobeError::Load { program: "discovery thread", reason: e.to_string() })?;
    Ok(Uprobes { stop, thread: Some(thread) })
}

struct Discovery {
    progs: Programs,
    files: HashMap<FileKey, Seen>,
    /// Versions of files that held nothing, kept after they are no longer mapped.
    negative: negative::NegativeCache,
    metrics: Metrics,
    /// `tracer_memory_bytes{structure="uprobe_cache"}`.
    bytes: Gauge,
    own_pid: u32,
    go: GoProcesses,
}

impl Discovery {
    /// One pass over `/proc`: attach new files, detach files no process maps any more.
    fn scan(&mut self) {
        self.metrics.scans.inc();
        let Ok(dir) = std::fs::read_dir("/proc") else { return };
        let mut mapped: HashMap<FileKey, Candidate> = HashMap::new();
        let mut exes: HashMap<u32, FileKey> = HashMap::new();
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if pid == self.own_pid {
                continue;
            }
            // Processes may exit at any point: every read failure just skips the process.
            let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else { continue };
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let exe = exe.as_ref().and_then(|p| p.to_str());
            for c in candidates_in_maps(pid, &maps, exe) {
                if c.library.is_none() {
                    exes.insert(pid, c.key);
                }
                mapped.entry(c.key).or_insert(c);
            }
        }
        let grpc = &mut self.go.grpc;
        self.files.retain(|key, seen| {
            let keep = mapped.contains_key(key);
            if !keep
                && let Seen::Attached(f) = seen {
                    tracing::info!(path = %f.path, probes = f.links.len(), "client library no longer mapped: probes detached");
                    if let Some(map) = grpc.as_mut() {
                        for id in &f.grpc_ids {
                            let _ = map.remove(id);
                        }
                    }
                }
            keep
        });
        self.go.files.retain(|key, _| mapped.contains_key(key));
        for (key, c) in mapped {
            if self.files.contains_key(&key) {
                continue;
            }
            let path = format!("/proc/{}/root{}", c.pid, c.path);
            let version = std::fs::metadata(&path).ok().map(|m| negative::FileVersion::of(&m));
            if let Some(v) = version
                && self.negative.holds_nothing(v)
            {
                self.metrics.skipped.inc();
                self.files.insert(key, Seen::Nothing);
                continue;
            }
            let seen = self.look_at(&c);
            // A Go executable is read again when it is mapped again: its goroutine offset is
            // what the kernel needs for the processes that run it.
            let go = self.go.files.get(&key).is_some_and(Option::is_some);
            if let (Seen::Nothing, Some(v), false) = (&seen, version, go) {
                self.negative.insert(v);
            }
            self.files.insert(key, seen);
        }
        self.sync_go(&exes);
        let entry = std::mem::size_of::<(FileKey, Seen)>() + 1;
        self.bytes.set((self.negative.heap_bytes() + self.files.capacity() * entry) as i64);
        let (mut files, mut probes) = (0, 0);
        for seen in self.files.values() {
            if let Seen::Attached(f) = seen {
                files += 1;
                probes += f.links.len();
            }
        }
        self.metrics.files.set(files);
        self.metrics.probes.set(probes as i64);
    }

    /// Enters the Go processes of this scan in `GO_PROCESSES` (`exes`: each process's
    /// executable) and removes those that are gone or no longer run a Go executable. Entries
    /// are written again at every scan: the kernel removes a process's entry when it execs.
    fn sync_go(&mut self, exes: &HashMap<u32, FileKey>) {
        let Some(map) = self.go.map.as_mut() else { return };
        let files = &self.go.files;
        let offset_of = |pid: &u32| exes.get(pid).and_then(|key| files.get(key).copied().flatten().map(|o| (*key, o)));
        let gone: Vec<u32> = self
            .go
            .pids
            .iter()
            .filter(|(pid, key)| offset_of(pid).is_none_or(|(k, _)| k != **key))
            .map(|(p, _)| *p)
            .collect();
        for pid in gone {
            let _ = map.remove(&pid);
            self.go.pids.remove(&pid);
        }
        self.go.failed.retain(|pid| offset_of(pid).is_some());
        for pid in exes.keys() {
            let Some((key, goid_offset)) = offset_of(pid) else { continue };
            match map.insert(*pid, k::GoProcess { goid_offset, _pad: 0 }, 0) {
                Ok(()) => {
                    self.go.pids.insert(*pid, key);
                    self.go.failed.remove(pid);
                }
                Err(e) => {
                    if self.go.failed.insert(*pid) {
                        tracing::warn!(pid, error = %e, "Go process not entered in the kernel map: it keeps thread causality");
                        self.metrics.failures.inc();
                    }
                }
            }
        }
        self.metrics.go_processes.set(self.go.pids.len() as i64);
    }

    /// Whether an executable is Go, and its goroutine id offset; what it holds of grpc-go.
    fn look_at_go(&mut self, c: &Candidate, data: &[u8]) -> grpcgo::Grpc {
        let go = golang::inspect(data);
        if let Some(g) = &go {
            match g.goid_offset {
                Some(offset) => tracing::info!(
                    path = %c.path,
                    version = g.version.as_deref().unwrap_or("unknown"),
                    offset,
                    source = ?g.source,
                    "Go executable: calls keyed by goroutine"
                ),
                None => {
                    tracing::warn!(
                        path = %c.path,
                        version = g.version.as_deref().unwrap_or("unknown"),
                        "Go executable without DWARF, of a version whose runtime layout is not known: thread causality only"
                    );
                    self.metrics.failures.inc();
                }
            }
        }
        let grpc = go.as_ref().map_or(grpcgo::Grpc::Absent, |g| g.grpc.clone());
        let goid = go.and_then(|g| g.goid_offset);
        self.go.files.insert(c.key, goid);
        if goid.is_none() {
            // Hand-offs name goroutines: without their ids there is nothing to follow.
            return grpcgo::Grpc::Absent;
        }
        grpc
    }

    /// Attaches the grpc-go stream probes of an executable (`path` as the daemon reaches it).
    fn attach_grpc(&mut self, c: &Candidate, path: &str, grpc: grpcgo::Grpc, out: &mut FileProbes) {
        let probes = match grpc {
            grpcgo::Grpc::Absent => return,
            grpcgo::Grpc::Unfollowed(reason) => {
                tracing::warn!(path = %c.path, reason, "grpc-go streams not followed to their goroutines: gRPC hops of this program stay unlinked");
                self.metrics.failures.inc();
                return;
            }
            grpcgo::Grpc::Probes(p) => p,
        };
        let (Some(prog), Some(map)) = (self.progs.grpc.as_ref(), self.go.grpc.as_mut()) else { return };
        for p in probes {
            let id = self.go.next_grpc_id;
            self.go.next_grpc_id = id.wrapping_add(1).max(1);
            if let Err(e) = map.insert(id, p.layout, 0) {
                tracing::warn!(path = %c.path, symbol = p.symbol, error = %e, "grpc-go layout not entered in the kernel map: probe not attached");
                self.metrics.failures.inc();
                continue;
            }
            match attach::attach(self.progs.pmu, prog.as_fd(), path, p.offset, false, u64::from(id)) {
                Ok(a) => {
                    out.links.push(a);
                    out.grpc_ids.push(id);
                }
                Err(e) => {
                    let _ = map.remove(&id);
                    tracing::warn!(path = %c.path, symbol = p.symbol, error = %e, "grpc-go uprobe not attached");
                    self.metrics.failures.inc();
                }
            }
        }
        if !out.grpc_ids.is_empty() {
            tracing::info!(path = %c.path, pid = c.pid, probes = out.grpc_ids.len(), "grpc-go stream probes attached");
        }
    }

    /// What became of a file: attached when any probe is.
    fn seen(probes: FileProbes) -> Seen {
        if probes.links.is_empty() { Seen::Nothing } else { Seen::Attached(probes) }
    }

    /// Reads one file, finds the traced functions and attaches them.
    fn look_at(&mut self, c: &Candidate) -> Seen {
        let path = format!("/proc/{}/root{}", c.pid, c.path);
        let data = match read_checked(&path, c.key) {
            Ok(d) => d,
            Err(reason) => {
                if c.library.is_some() {
                    tracing::warn!(path = %c.path, pid = c.pid, %reason, "client library not readable: not traced");
                    self.metrics.failures.inc();
                }
                return Seen::Nothing;
            }
        };
        let mut probes = FileProbes { path: c.path.clone(), links: Vec::new(), grpc_ids: Vec::new() };
        if c.library.is_none() {
            let grpc = self.look_at_go(c, &data);
            self.attach_grpc(c, &path, grpc, &mut probes);
        }
        let analysis = match elf::analyse(&data, c.library) {
            Ok(a) => a,
            Err(e) => {
                if c.library.is_some() {
                    tracing::warn!(path = %c.path, error = %e, "client library is not a readable ELF file: not traced");
                    self.metrics.failures.inc();
                }
                return Self::seen(probes);
            }
        };
        drop(data);
        if analysis.stripped && c.library.is_some() {
            tracing::warn!(path = %c.path, "client library has no symbol table (stripped): not traced");
            self.metrics.failures.inc();
            return Seen::Nothing;
        }
        if analysis.targets.is_empty() {
            if c.library.is_some() {
                tracing::warn!(path = %c.path, "none of the traced functions found in the client library: not traced");
                self.metrics.failures.inc();
            }
            return Self::seen(probes);
        }
        for (lib, missing) in &analysis.found {
            if !missing.is_empty() {
                tracing::warn!(path = %c.path, library = lib.name(), missing = ?missing, "traced functions missing: the others are traced");
            }
        }
        let links = &mut probes.links;
        for t in &analysis.targets {
            let progs: &[(&OwnedFd, bool)] = if t.append {
                &[(&self.progs.append, false)]
            } else {
                &[(&self.progs.enter, false), (&self.progs.exit, true)]
            };
            for &(prog, ret) in progs {
                match attach::attach(self.progs.pmu, prog.as_fd(), &path, t.offset, ret, t.cookie) {
                    Ok(a) => links.push(a),
                    Err(e) => {
                        tracing::warn!(path = %c.path, symbol = t.symbol, retprobe = ret, error = %e, "uprobe not attached");
                        self.metrics.failures.inc();
                    }
                }
            }
        }
        let libs: Vec<&str> = analysis.found.iter().map(|(l, _)| l.name()).collect();
        tracing::info!(path = %c.path, pid = c.pid, libraries = ?libs, probes = links.len(), "client library probes attached");
        Self::seen(probes)
    }
}

/// Reads a file after checking that it is still the one seen in the maps (same device and
/// inode) and not too big.
fn read_checked(path: &str, key: FileKey) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.ino() != key.inode || meta.dev() != key.dev {
        return Err("replaced since it was mapped".into());
    }
    if meta.len() > elf::MAX_FILE_BYTES {
        return Err(format!("{} bytes, more than the {} analysed", meta.len(), elf::MAX_FILE_BYTES));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234 /usr/bin/client
55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1234 /usr/bin/client
7f0000000000-7f0000010000 r-xp 00002000 08:01 777 /usr/lib/x86_64-linux-gnu/libhiredis.so.0.14
7f0000020000-7f0000030000 r-xp 00002000 08:01 777 /usr/lib/x86_64-linux-gnu/libhiredis.so.0.14
7f0000040000-7f0000050000 r-xp 00002000 103:02 99 /usr/lib/x86_64-linux-gnu/libmariadb.so.3
7f0000060000-7f0000070000 r-xp 00002000 08:01 555 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000080000-7f0000090000 r-xp 00000000 08:01 556 /tmp/libmariadb.so.3 (deleted)
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]
garbage line
";

    #[test]
    fn finds_libraries_and_the_executable_once_each() {
        let c = candidates_in_maps(42, MAPS, Some("/usr/bin/client"));
        let names: Vec<(&str, Option<Library>)> = c.iter().map(|c| (c.path.as_str(), c.library)).collect();
        assert_eq!(
            names,
            vec![
                ("/usr/bin/client", None),
                ("/usr/lib/x86_64-linux-gnu/libhiredis.so.0.14", Some(Library::Hiredis)),
                ("/usr/lib/x86_64-linux-gnu/libmariadb.so.3", Some(Library::Mariadb)),
            ]
        );
        // 103:02 → st_dev as stat reports it.
        assert_eq!(c[2].key, FileKey { dev: (0x103 << 8) | 2, inode: 99 });
        assert!(candidates_in_maps(42, MAPS, None).iter().all(|c| c.library.is_some()));
    }

    #[test]
    fn device_numbers_match_stat() {
        let meta = std::fs::metadata("/proc/self/exe").unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let c = candidates_in_maps(1, &maps, exe.to_str());
        assert_eq!(c[0].key, FileKey { dev: meta.dev(), inode: meta.ino() });
    }
}
