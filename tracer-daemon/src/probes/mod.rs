//! Loading and attaching the kernel programs: environment checks, kernel offsets from BTF,
//! settings and filters, and one declarative table of probes (attach point, required or
//! optional, fallback). An optional probe that fails is reported once and shown in metrics.

pub mod btf;
pub mod env;
#[cfg(test)]
mod object_names;

use std::sync::Arc;

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray},
    programs::{CgroupAttachMode, RawTracePoint, SockOps, TracePoint},
};
use tracer_common as k;

use crate::config::{Filters, ProbeFloor, SyscallHook};
use crate::metrics::{Kind, Registry, Sample};

/// The kernel object, embedded at build time (empty when it was not built).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tracer-ebpf.o"));

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "this daemon was built without its kernel programs: build it with `cargo xtask build` (or `cargo xtask run`)"
    )]
    NoObject,
    #[error(transparent)]
    Env(#[from] env::EnvError),
    #[error("kernel BTF: {0}")]
    Btf(#[from] btf::BtfError),
    #[error("loading the kernel programs: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("kernel program `{0}` is missing from the object")]
    MissingProgram(&'static str),
    #[error("required probe {probe} failed: {reason}")]
    Required { probe: String, reason: String },
    #[error("map {name}: {source}")]
    Map { name: &'static str, source: aya::maps::MapError },
}

/// Where a program attaches.
#[derive(Clone, Copy, Debug)]
enum Attach {
    Raw(&'static str),
    Tracepoint(&'static str, &'static str),
    /// One classic tracepoint per traced syscall: `syscalls:sys_{enter|exit}_<name>`.
    Syscalls(&'static str),
    /// `sock_ops` on the cgroup2 root (found in /proc/mounts), next to other programs there
    /// (another daemon's, for another network namespace): link-based, multi-program attach.
    CgroupSockOps,
}

impl Attach {
    /// The hook's name, without its category.
    fn hook(self) -> &'static str {
        match self {
            Attach::Raw(tp) | Attach::Tracepoint(_, tp) => tp,
            Attach::Syscalls(phase) => phase,
            Attach::CgroupSockOps => "sock_ops",
        }
    }
}

struct ProbeSpec {
    program: &'static str,
    attach: Attach,
    required: bool,
    /// Program to use in this one's place when it fails (same role, other hook).
    fallback: Option<(&'static str, Attach)>,
}

/// Syscalls hooked by the classic-tracepoint variant.
const TRACED_SYSCALLS: &[&str] = &[
    "read",
    "write",
    "close",
    "readv",
    "writev",
    "connect",
    "accept",
    "accept4",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendfile64",
    "splice",
    "sendmmsg",
    "recvmmsg",
];

fn table(hook: SyscallHook, propagate: bool) -> Vec<ProbeSpec> {
    let (enter, exit) = match hook {
        SyscallHook::Raw => (
            ProbeSpec {
                program: k::PROG_RAW_SYS_ENTER,
                attach: Attach::Raw("sys_enter"),
                required: true,
                fallback: Some((k::PROG_TP_SYS_ENTER, Attach::Syscalls("enter"))),
            },
            ProbeSpec {
                program: k::PROG_RAW_SYS_EXIT,
                attach: Attach::Raw("sys_exit"),
                required: true,
                fallback: Some((k::PROG_TP_SYS_EXIT, Attach::Syscalls("exit"))),
            },
        ),
        SyscallHook::Tracepoint => (
            ProbeSpec {
                program: k::PROG_TP_SYS_ENTER,
                attach: Attach::Syscalls("enter"),
                required: true,
                fallback: None,
            },
            ProbeSpec {
                program: k::PROG_TP_SYS_EXIT,
                attach: Attach::Syscalls("exit"),
                required: true,
                fallback: None,
            },
        ),
    };
    let mut specs = vec![
        enter,
        exit,
        ProbeSpec {
            program: k::PROG_INET_SOCK_SET_STATE,
            attach: Attach::Tracepoint("sock", "inet_sock_set_state"),
            required: false,
            fallback: None,
        },
        ProbeSpec {
            program: k::PROG_PROCESS_EXIT,
            attach: Attach::Raw("sched_process_exit"),
            required: false,
            fallback: None,
        },
        ProbeSpec {
            program: k::PROG_PROCESS_EXEC,
            attach: Attach::Raw("sched_process_exec"),
            required: false,
            fallback: None,
        },
    ];
    if propagate {
        specs.push(ProbeSpec {
            program: k::PROG_SOCK_OPS,
            attach: Attach::CgroupSockOps,
            required: false,
            fallback: None,
        });
    }
    specs
}

/// A benchmark floor's table: its programs on the hooks the tracer's table uses (the syscall
/// hooks as raw tracepoints).
fn floor_table(floor: ProbeFloor, propagate: bool) -> Vec<ProbeSpec> {
    let spec = |program, attach| ProbeSpec { program, attach, required: true, fallback: None };
    let (enter, exit) = match floor {
        ProbeFloor::Null => (k::PROG_FLOOR_NULL_RAW, k::PROG_FLOOR_NULL_RAW),
        ProbeFloor::Minimal => (k::PROG_FLOOR_ENTER, k::PROG_FLOOR_EXIT),
    };
    let mut specs = vec![
        spec(enter, Attach::Raw("sys_enter")),
        spec(exit, Attach::Raw("sys_exit")),
        spec(k::PROG_FLOOR_NULL_TP, Attach::Tracepoint("sock", "inet_sock_set_state")),
        spec(k::PROG_FLOOR_NULL_RAW, Attach::Raw("sched_process_exit")),
        spec(k::PROG_FLOOR_NULL_RAW, Attach::Raw("sched_process_exec")),
    ];
    if propagate {
        specs.push(spec(k::PROG_FLOOR_NULL_SOCK_OPS, Attach::CgroupSockOps));
    }
    specs
}

impl Filters {
    fn flags(&self) -> u32 {
        let mut f = 0;
        if !self.include_pids.is_empty() || !self.exclude_pids.is_empty() {
            f |= k::FILTER_FLAG_PID;
        }
        if !self.include_comms.is_empty() || !self.exclude_comms.is_empty() {
            f |= k::FILTER_FLAG_COMM;
        }
        if !self.include_ports.is_empty() || !self.exclude_ports.is_empty() {
            f |= k::FILTER_FLAG_PORT;
        }
        if !self.include_pids.is_empty() || !self.include_comms.is_empty() {
            f |= k::FILTER_FLAG_PROCESS_INCLUDE;
        }
        if !self.include_ports.is_empty() {
            f |= k::FILTER_FLAG_PORT_INCLUDE;
        }
        f
    }
}

/// Command name as the kernel stores it: at most 15 bytes, NUL padded.
pub fn comm_key(name: &str) -> [u8; 16] {
    let mut key = [0u8; 16];
    let n = name.len().min(15);
    key[..n].copy_from_slice(&name.as_bytes()[..n]);
    key
}

pub struct LoadOptions {
    pub hook: SyscallHook,
    /// Payload bytes captured per data call.
    pub capture_bytes: u32,
    /// Ring buffer size in bytes (rounded up to a power of two, at least one page).
    pub ring_bytes: u32,
    pub filters: Filters,
    /// Network namespace inode to trace, 0 for all.
    pub netns_inum: u64,
    /// Carry trace context in a TCP option (`sock_ops`) and choose client ids in the kernel.
    pub propagate: bool,
    /// Load this benchmark floor instead of the tracer's programs.
    pub floor: Option<ProbeFloor>,
}

/// What became of one probe.
#[derive(Clone, Debug)]
pub struct ProbeStatus {
    pub probe: String,
    pub attached: bool,
    pub detail: String,
}

/// The loaded programs; dropping it detaches everything.
pub struct Probes {
    pub ebpf: Ebpf,
    pub status: Vec<ProbeStatus>,
    /// Trace context travels in the TCP option (requested and the sock_ops program attached).
    pub propagating: bool,
}

impl Probes {
    /// Checks the environment, loads the object and attaches the probe table.
    pub fn load(opts: &LoadOptions) -> Result<Probes, ProbeError> {
        if OBJECT.is_empty() {
            return Err(ProbeError::NoObject);
        }
        env::check_privileges()?;
        env::ensure_tracefs()?;
        env::raise_memlock();
        let offsets = btf::Btf::from_sys_fs()?.kernel_offsets()?;
        let settings = k::Settings {
            self_tgid: std::process::id(),
            capture_bytes: opts.capture_bytes.clamp(0, k::MAX_CAPTURE as u32 - 1),
            filter_flags: opts.filters.flags(),
            propagate: opts.propagate as u32,
            netns_inum: opts.netns_inum,
        };
        let ring = opts.ring_bytes.max(4096).next_power_of_two();
        let mut ebpf = EbpfLoader::new()
            .override_global(k::GLOBAL_OFFSETS, &offsets, true)
            .override_global(k::GLOBAL_SETTINGS, &settings, true)
            .map_max_entries(k::MAP_EVENTS, ring)
            .load(OBJECT)?;
        write_filters(&mut ebpf, &opts.filters)?;
        let mut status = Vec::new();
        let specs = match opts.floor {
            Some(f) => floor_table(f, opts.propagate),
            None => table(opts.hook, opts.propagate),
        };
        for spec in specs {
            // A floor attaches one program to several hooks: its status names the hook too.
            let probe = match opts.floor {
                Some(_) => format!("{}/{}", spec.program, spec.attach.hook()),
                None => spec.program.into(),
            };
            match attach(&mut ebpf, spec.program, spec.attach) {
                Ok(detail) => status.push(ProbeStatus { probe, attached: true, detail }),
                Err(reason) => {
                    tracing::warn!(probe = spec.program, %reason, "probe failed to attach");
                    status.push(ProbeStatus { probe, attached: false, detail: reason.clone() });
                    let recovered = match spec.fallback {
                        Some((program, at)) => match attach(&mut ebpf, program, at) {
                            Ok(detail) => {
                                tracing::info!(probe = program, replaces = spec.program, "fallback probe attached");
                                status.push(ProbeStatus { probe: program.into(), attached: true, detail });
                                true
                            }
                            Err(e) => {
                                status.push(ProbeStatus { probe: program.into(), attached: false, detail: e });
                                false
                            }
                        },
                        None => false,
                    };
                    if spec.required && !recovered {
                        return Err(ProbeError::Required { probe: spec.program.into(), reason });
                    }
                }
            }
        }
        let propagating =
            opts.floor.is_none() && opts.propagate && status.iter().any(|s| s.probe == k::PROG_SOCK_OPS && s.attached);
        if opts.floor.is_none() && opts.propagate && !propagating {
            tracing::warn!("trace-context propagation is off: the sock_ops program did not attach");
        }
        Ok(Probes { ebpf, status, propagating })
    }

    /// Takes the event ring buffer (once).
    pub fn take_events(&mut self) -> Option<aya::maps::Map> {
        self.ebpf.take_map(k::MAP_EVENTS)
    }

    /// Takes a per-CPU array of `u64` counters out of the object.
    fn take_counters(&mut self, name: &'static str) -> Result<PerCpuArray<MapData, u64>, ProbeError> {
        let map = self
            .ebpf
            .take_map(name)
            .ok_or(ProbeError::Map { name, source: aya::maps::MapError::InvalidName { name: name.into() } })?;
        PerCpuArray::try_from(map).map_err(|source| ProbeError::Map { name, source })
    }

    /// Exposes kernel counters, per-program errors and probe status in `registry`, read at
    /// scrape time.
    pub fn register_metrics(&mut self, registry: &Arc<Registry>) -> Result<(), ProbeError> {
        let counters = self.take_counters(k::MAP_COUNTERS)?;
        let program_errors = self.take_counters(k::MAP_PROGRAM_ERRORS)?;
        let status = self.status.clone();
        let programs: Vec<(u32, String)> =
            self.ebpf.programs().filter_map(|(name, prog)| Some((prog.info().ok()?.id(), name.to_owned()))).collect();
        registry.add_collector(move |out: &mut Vec<Sample>| {
            // Run time and count advance only while the kernel accounts them (`--bpf-stats`,
            // or the `kernel.bpf_stats_enabled` sysctl).
            for info in aya::programs::loaded_programs().flatten() {
                let Some((_, name)) = programs.iter().find(|(id, _)| *id == info.id()) else { continue };
                out.push(Sample::new(
                    "tracer_bpf_program_run_seconds_total",
                    "Kernel time spent in each of the daemon's programs (while bpf stats are enabled)",
                    Kind::Counter,
                    &[("program", name)],
                    info.run_time().as_secs_f64(),
                ));
                out.push(Sample::new(
                    "tracer_bpf_program_runs_total",
                    "Runs of each of the daemon's programs (while bpf stats are enabled)",
                    Kind::Counter,
                    &[("program", name)],
                    info.run_count() as f64,
                ));
            }
            for (i, name) in k::COUNTER_NAMES.iter().enumerate() {
                let total: u64 = counters.get(&(i as u32), 0).map(|v| v.iter().sum()).unwrap_or(0);
                out.push(Sample::new(
                    "tracer_kernel_events_total",
                    "Kernel-side counters by kind (ringbuf_full = events lost in the kernel)",
                    Kind::Counter,
                    &[("counter", name)],
                    total as f64,
                ));
            }
            for (i, name) in k::PROGRAM_NAMES.iter().enumerate() {
                let total: u64 = program_errors.get(&(i as u32), 0).map(|v| v.iter().sum()).unwrap_or(0);
                out.push(Sample::new(
                    "tracer_kernel_program_errors_total",
                    "Runs of each kernel program that could not finish (the reason is counted in \
                     tracer_kernel_events_total)",
                    Kind::Counter,
                    &[("program", name)],
                    total as f64,
                ));
            }
            for s in &status {
                out.push(Sample::new(
                    "tracer_probe_attached",
                    "1 when the probe is attached, 0 when it failed (see the daemon log for the reason)",
                    Kind::Gauge,
                    &[("probe", &s.probe)],
                    if s.attached { 1.0 } else { 0.0 },
                ));
            }
        });
        Ok(())
    }
}

fn write_filters(ebpf: &mut Ebpf, f: &Filters) -> Result<(), ProbeError> {
    fn fill<K: aya::Pod>(
        ebpf: &mut Ebpf,
        name: &'static str,
        include: impl IntoIterator<Item = K>,
        exclude: impl IntoIterator<Item = K>,
    ) -> Result<(), ProbeError> {
        let map = ebpf
            .map_mut(name)
            .ok_or(ProbeError::Map { name, source: aya::maps::MapError::InvalidName { name: name.into() } })?;
        let mut m: BpfHashMap<_, K, u32> =
            BpfHashMap::try_from(map).map_err(|source| ProbeError::Map { name, source })?;
        for key in include {
            m.insert(key, k::FILTER_INCLUDE, 0).map_err(|source| ProbeError::Map { name, source })?;
        }
        for key in exclude {
            m.insert(key, k::FILTER_EXCLUDE, 0).map_err(|source| ProbeError::Map { name, source })?;
        }
        Ok(())
    }
    fill(ebpf, k::MAP_PID_FILTER, f.include_pids.iter().copied(), f.exclude_pids.iter().copied())?;
    fill(
        ebpf,
        k::MAP_COMM_FILTER,
        f.include_comms.iter().map(|c| comm_key(c)),
        f.exclude_comms.iter().map(|c| comm_key(c)),
    )?;
    fill(ebpf, k::MAP_PORT_FILTER, f.include_ports.iter().copied(), f.exclude_ports.iter().copied())?;
    Ok(())
}

/// Loads `program` unless an earlier attachment loaded it.
macro_rules! load_once {
    ($p:expr) => {
        if $p.fd().is_err() {
            $p.load().map_err(|e| verifier_reason(&e))?;
        }
    };
}

/// Loads `program` (once) and attaches it; returns a short description or the reason it failed.
fn attach(ebpf: &mut Ebpf, program: &'static str, at: Attach) -> Result<String, String> {
    let prog = ebpf.program_mut(program).ok_or_else(|| format!("program {program} missing from the object"))?;
    match at {
        Attach::Raw(tp) => {
            let p: &mut RawTracePoint = prog.try_into().map_err(|e| format!("{e}"))?;
            load_once!(p);
            p.attach(tp).map_err(|e| format!("attach raw_tp/{tp}: {e}"))?;
            Ok(format!("raw_tp/{tp}"))
        }
        Attach::Tracepoint(cat, name) => {
            let p: &mut TracePoint = prog.try_into().map_err(|e| format!("{e}"))?;
            load_once!(p);
            p.attach(cat, name).map_err(|e| format!("attach {cat}:{name}: {e}"))?;
            Ok(format!("{cat}:{name}"))
        }
        Attach::CgroupSockOps => {
            let root = env::cgroup2_root().map_err(|e| e.to_string())?;
            let p: &mut SockOps = prog.try_into().map_err(|e| format!("{e}"))?;
            load_once!(p);
            let dir = std::fs::File::open(&root).map_err(|e| format!("opening {}: {e}", root.display()))?;
            // aya attaches through `bpf_link_create` (Linux ≥ 5.7): a cgroup link always runs
            // beside the cgroup's other programs, and the kernel rejects any mode flag there, so
            // the mode that maps to no flag is the one that gives multi-program attach.
            p.attach(dir, CgroupAttachMode::Single).map_err(|e| {
                let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
                format!("attach sock_ops to {}: {e}{cause}", root.display())
            })?;
            Ok(format!("sock_ops on {}", root.display()))
        }
        Attach::Syscalls(phase) => {
            let p: &mut TracePoint = prog.try_into().map_err(|e| format!("{e}"))?;
            load_once!(p);
            let mut attached = 0;
            for sc in TRACED_SYSCALLS {
                let name = format!("sys_{phase}_{sc}");
                match p.attach("syscalls", &name) {
                    Ok(_) => attached += 1,
                    Err(e) => tracing::warn!(tracepoint = %name, error = %e, "syscall tracepoint not attached"),
                }
            }
            if attached == 0 {
                return Err(format!("no syscalls:sys_{phase}_* tracepoint attached"));
            }
            Ok(format!("syscalls:sys_{phase}_* ({attached} of {})", TRACED_SYSCALLS.len()))
        }
    }
}

/// The load error with the verifier's last lines, which name the failing instruction.
fn verifier_reason(e: &aya::programs::ProgramError) -> String {
    match e {
        aya::programs::ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(6).collect();
            format!("load failed: {io_error}; verifier: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
        }
        other => format!("load failed: {other}"),
    }
}
