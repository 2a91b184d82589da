//! Container identity from `/proc/PID/cgroup`: the container id and the pod uid that the
//! common runtimes write into cgroup paths, for cgroup v1 and v2.
//!
//! Shapes recognised (the last matching path segment wins, so a container's own sub-cgroups,
//! e.g. `…/cri-containerd-ID.scope/init.scope`, still resolve; paths relative to the reader's
//! cgroup namespace, e.g. `/../../kubepods-…`, too):
//!
//! | runtime, cgroup driver | path |
//! |---|---|
//! | containerd, systemd | `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope` |
//! | CRI-O, systemd | `/kubepods.slice/kubepods-pod<uid_>.slice/crio-<id>.scope` (`crio-conmon-<id>.scope` is the monitor, not the container) |
//! | docker, systemd | `/system.slice/docker-<id>.scope` |
//! | podman, systemd | `/machine.slice/libpod-<id>.scope` |
//! | any, cgroupfs | `/kubepods/besteffort/pod<uid>/<id>`, `/kubepods/pod<uid>/<id>` |
//! | docker, cgroupfs | `/docker/<id>` |
//!
//! `<id>` is 64 lowercase hex digits; `<uid_>` is the pod uid with `_` for `-`.

/// The runtime a container id came from, when the path says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
}

impl Runtime {
    /// The value of the `container.runtime` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }

    /// From a CRI `containerID` scheme (`containerd://…`).
    pub fn from_scheme(scheme: &str) -> Option<Runtime> {
        match scheme {
            "containerd" => Some(Runtime::Containerd),
            "cri-o" | "crio" => Some(Runtime::CriO),
            "docker" => Some(Runtime::Docker),
            "podman" | "libpod" => Some(Runtime::Podman),
            _ => None,
        }
    }
}

/// What a cgroup file says about a process's container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerRef {
    /// The full container id (64 hex digits).
    pub container_id: Option<String>,
    /// The pod uid, in its API form (with dashes).
    pub pod_uid: Option<String>,
    pub runtime: Option<Runtime>,
}

impl ContainerRef {
    pub fn is_empty(&self) -> bool {
        self.container_id.is_none() && self.pod_uid.is_none()
    }
}

/// Scope prefixes of systemd-driver container cgroups, with their runtime.
const SCOPE_PREFIXES: [(&str, Option<Runtime>); 5] = [
    ("cri-containerd-", Some(Runtime::Containerd)),
    ("crio-", Some(Runtime::CriO)),
    ("docker-", Some(Runtime::Docker)),
    ("libpod-", Some(Runtime::Podman)),
    ("containerd-", Some(Runtime::Containerd)),
];

/// Parses a whole `/proc/PID/cgroup` file: `hierarchy-id:controllers:path` per line. The v2
/// line (`0::path`) is tried first, then the v1 lines in order; the first path that names a
/// container gives the answer (with the pod uid of the same path), else the first that names
/// a pod.
pub fn parse_cgroup_file(text: &str) -> ContainerRef {
    let mut v2 = Vec::new();
    let mut v1 = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(hier), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if hier == "0" && ctrl.is_empty() {
            v2.push(path);
        } else {
            v1.push(path);
        }
    }
    let mut pod_only = None;
    for path in v2.into_iter().chain(v1) {
        let r = parse_cgroup_path(path);
        if r.container_id.is_some() {
            return r;
        }
        if pod_only.is_none() && r.pod_uid.is_some() {
            pod_only = Some(r);
        }
    }
    pod_only.unwrap_or_default()
}

/// Parses one cgroup path.
pub fn parse_cgroup_path(path: &str) -> ContainerRef {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = ContainerRef::default();
    for (i, seg) in segments.iter().enumerate().rev() {
        if seg.starts_with("crio-conmon-") {
            // CRI-O's container monitor: it sits beside the container, not in it.
            return ContainerRef::default();
        }
        if out.container_id.is_none()
            && let Some((id, runtime)) = container_id_of(seg)
        {
            out.container_id = Some(id.to_owned());
            out.runtime = runtime.or_else(|| match i.checked_sub(1).map(|p| segments[p]) {
                Some("docker") => Some(Runtime::Docker),
                _ => None,
            });
            continue;
        }
        if let Some(uid) = pod_uid_of(seg) {
            out.pod_uid = Some(uid);
            break;
        }
    }
    out
}

/// The container id in one path segment: a runtime scope (`cri-containerd-<id>.scope`) or a
/// bare id (cgroupfs driver).
fn container_id_of(seg: &str) -> Option<(&str, Option<Runtime>)> {
    if let Some(scope) = seg.strip_suffix(".scope") {
        return SCOPE_PREFIXES.iter().find_map(|(prefix, runtime)| {
            let id = scope.strip_prefix(prefix)?;
            is_container_id(id).then_some((id, *runtime))
        });
    }
    is_container_id(seg).then_some((seg, None))
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The pod uid in one path segment: `pod<uid>` (cgroupfs) or `…-pod<uid_>.slice` (systemd).
fn pod_uid_of(seg: &str) -> Option<String> {
    let (raw, systemd) = match seg.strip_suffix(".slice") {
        Some(s) => (&s[s.rfind("-pod")? + 4..], true),
        None => (seg.strip_prefix("pod")?, false),
    };
    let uid = if systemd { raw.replace('_', "-") } else { raw.to_owned() };
    is_pod_uid(&uid).then_some(uid)
}

/// A UUID (API-created pods) or 32 hex digits (the config hash that names static pods).
fn is_pod_uid(s: &str) -> bool {
    let hex = |b: u8| b.is_ascii_hexdigit();
    match s.len() {
        36 => s.bytes().enumerate().all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { hex(b) }),
        32 => s.bytes().all(hex),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c2b5a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
    const UID: &str = "8a6f4b2c-1d3e-4f50-9a7b-6c5d4e3f2a1b";
    const UID_: &str = "8a6f4b2c_1d3e_4f50_9a7b_6c5d4e3f2a1b";

    fn want(runtime: Option<Runtime>, uid: bool) -> ContainerRef {
        ContainerRef { container_id: Some(ID.into()), pod_uid: uid.then(|| UID.into()), runtime }
    }

    #[test]
    fn cgroup_v2_paths_of_each_runtime() {
        let cases: Vec<(String, ContainerRef)> = vec![
            (
                format!(
                    "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope\n"
                ),
                want(Some(Runtime::Containerd), true),
            ),
            (
                format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope/init.scope\n"),
                want(Some(Runtime::Containerd), true),
            ),
            (
                format!(
                    "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope\n"
                ),
                want(Some(Runtime::CriO), true),
            ),
            (format!("0::/system.slice/docker-{ID}.scope\n"), want(Some(Runtime::Docker), false)),
            (format!("0::/machine.slice/libpod-{ID}.scope/container\n"), want(Some(Runtime::Podman), false)),
            (format!("0::/kubepods/burstable/pod{UID}/{ID}\n"), want(None, true)),
            (format!("0::/kubepods/pod{UID}/{ID}\n"), want(None, true)),
            // kind nodes nest the kubelet's tree under its own slice.
            (
                format!(
                    "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope\n"
                ),
                want(Some(Runtime::Containerd), true),
            ),
            // Seen from inside another container's cgroup namespace.
            (
                format!("0::/../../kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope\n"),
                want(Some(Runtime::Containerd), true),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_cgroup_file(&text), expected, "{text}");
        }
    }

    #[test]
    fn cgroup_v1_files_of_each_runtime() {
        let docker = format!(
            "12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/system.slice/containerd.service\n"
        );
        assert_eq!(parse_cgroup_file(&docker), want(Some(Runtime::Docker), false));
        let kubepods = format!(
            "13:rdma:/\n12:cpuset:/kubepods/besteffort/pod{UID}/{ID}\n4:memory:/kubepods/besteffort/pod{UID}/{ID}\n1:name=systemd:/kubepods/besteffort/pod{UID}/{ID}\n"
        );
        assert_eq!(parse_cgroup_file(&kubepods), want(None, true));
        let systemd = format!(
            "11:devices:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope\n1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope\n0::/\n"
        );
        assert_eq!(parse_cgroup_file(&systemd), want(Some(Runtime::Containerd), true));
        let crio = format!("3:cpu,cpuacct:/kubepods.slice/kubepods-pod{UID_}.slice/crio-{ID}.scope\n");
        assert_eq!(parse_cgroup_file(&crio), want(Some(Runtime::CriO), true));
    }

    #[test]
    fn host_processes_monitors_and_near_misses_are_not_containers() {
        for text in [
            "0::/init.scope\n".to_owned(),
            "0::/system.slice/containerd.service\n".to_owned(),
            "0::/user.slice/user-1000.slice/session-2.scope\n".to_owned(),
            format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{ID}.scope\n"),
            // 63 digits, upper case, a non-hex letter.
            format!("0::/docker/{}\n", &ID[1..]),
            format!("0::/docker/{}\n", ID.to_uppercase()),
            format!("0::/docker/{}g\n", &ID[1..]),
            "".to_owned(),
            "garbage without colons\n".to_owned(),
        ] {
            assert!(parse_cgroup_file(&text).container_id.is_none(), "{text}");
        }
    }

    #[test]
    fn a_pod_level_cgroup_gives_the_pod_only_and_static_pod_hashes_count() {
        let r = parse_cgroup_file(&format!("0::/kubepods.slice/kubepods-pod{UID_}.slice\n"));
        assert_eq!((r.container_id, r.pod_uid.as_deref()), (None, Some(UID)));
        let hash = "6d0d0c8c5f2d1d5c84f4b6a2a0e0c7c1";
        let r = parse_cgroup_file(&format!("0::/kubepods/burstable/pod{hash}/{ID}\n"));
        assert_eq!(r.pod_uid.as_deref(), Some(hash));
        // "pods" in a slice name is not a pod uid.
        assert_eq!(pod_uid_of("kubepods-besteffort.slice"), None);
        assert_eq!(pod_uid_of("kubepods.slice"), None);
    }
}
