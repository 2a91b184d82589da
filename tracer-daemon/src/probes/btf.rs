//! A small reader of kernel BTF (`/sys/kernel/btf/vmlinux`): just enough to find struct and
//! union members by name, so the kernel programs can read fields at this kernel's offsets.

use std::collections::HashMap;

use tracer_common::KernelOffsets;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("kernel BTF has no {kind} named `{name}`")]
    NoType { kind: &'static str, name: String },
    #[error("kernel struct `{ty}` has no member `{member}`")]
    NoMember { ty: String, member: String },
    #[error("kernel member `{ty}.{member}` is a bitfield")]
    Bitfield { ty: String, member: String },
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

#[derive(Clone, Debug)]
struct Member {
    name: u32,
    ty: u32,
    /// Bit offset within the enclosing type.
    bit_offset: u32,
    bitfield_size: u32,
}

#[derive(Clone, Debug)]
struct Type {
    name: u32,
    kind: u32,
    /// Referenced type for typedef / const / volatile / pointer.
    ty: u32,
    members: Vec<Member>,
}

/// Parsed BTF: types by id (id 0 is `void`) and the string section.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    by_name: HashMap<(u32, String), u32>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, BtfError> {
    data.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|source| BtfError::Io { path: path.into(), source })?;
        Self::parse(&data)
    }

    /// Parses little-endian BTF. Never panics on malformed input.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if data.len() < 24 || data[0..2] != [0x9f, 0xeb] {
            return Err(BtfError::Malformed("bad magic (only little-endian BTF is supported)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off).ok_or(BtfError::Malformed("offset overflow"))?;
            let end = start.checked_add(len).ok_or(BtfError::Malformed("length overflow"))?;
            data.get(start..end).ok_or(BtfError::Malformed("section out of bounds"))
        };
        let tdata = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?.to_vec();
        let mut types = vec![Type { name: 0, kind: 0, ty: 0, members: Vec::new() }];
        let mut at = 0usize;
        while at < tdata.len() {
            let name = u32_at(tdata, at)?;
            let info = u32_at(tdata, at + 4)?;
            let size_or_type = u32_at(tdata, at + 8)?;
            at += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                1 | 14 | 17 => 4, // INT, VAR, DECL_TAG
                3 => 12,          // ARRAY
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let offset = u32_at(tdata, m + 8)?;
                        let (bit_offset, bitfield_size) =
                            if kind_flag { (offset & 0xff_ffff, offset >> 24) } else { (offset, 0) };
                        members.push(Member {
                            name: u32_at(tdata, m)?,
                            ty: u32_at(tdata, m + 4)?,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    12 * vlen
                }
                6 => 8 * vlen,   // ENUM
                13 => 8 * vlen,  // FUNC_PROTO
                15 => 12 * vlen, // DATASEC
                19 => 12 * vlen, // ENUM64
                _ => 0,
            };
            at = at.checked_add(extra).ok_or(BtfError::Malformed("type overflow"))?;
            types.push(Type { name, kind, ty: size_or_type, members });
        }
        let mut btf = Btf { types, strings, by_name: HashMap::new() };
        for (id, t) in btf.types.iter().enumerate() {
            if t.kind == KIND_STRUCT || t.kind == KIND_UNION {
                let name = btf.string(t.name).to_owned();
                if !name.is_empty() {
                    btf.by_name.entry((t.kind, name)).or_insert(id as u32);
                }
            }
        }
        Ok(btf)
    }

    fn string(&self, offset: u32) -> &str {
        let tail = self.strings.get(offset as usize..).unwrap_or(&[]);
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        std::str::from_utf8(&tail[..end]).unwrap_or("")
    }

    /// Follows typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => id = t.ty,
                _ => return Some(t),
            }
        }
        None
    }

    /// Bit offset of `member` in `ty`, looking into anonymous struct and union members.
    fn find(&self, ty: &Type, member: &str, depth: u32) -> Option<(u32, u32)> {
        if depth > 8 {
            return None;
        }
        for m in &ty.members {
            let name = self.string(m.name);
            if name == member {
                return Some((m.bit_offset, m.bitfield_size));
            }
            if name.is_empty()
                && let Some(inner) = self.resolve(m.ty)
                && let Some((off, size)) = self.find(inner, member, depth + 1)
            {
                return Some((m.bit_offset + off, size));
            }
        }
        None
    }

    /// Byte offset of `ty.member` (`ty` a struct name), through anonymous members.
    pub fn offset_of(&self, ty: &str, member: &str) -> Result<u32, BtfError> {
        let id = self
            .by_name
            .get(&(KIND_STRUCT, ty.to_owned()))
            .ok_or_else(|| BtfError::NoType { kind: "struct", name: ty.to_owned() })?;
        let t = &self.types[*id as usize];
        let (bits, bitfield) = self
            .find(t, member, 0)
            .ok_or_else(|| BtfError::NoMember { ty: ty.to_owned(), member: member.to_owned() })?;
        if bitfield != 0 || bits % 8 != 0 {
            return Err(BtfError::Bitfield { ty: ty.to_owned(), member: member.to_owned() });
        }
        Ok(bits / 8)
    }

    /// Offset of a member reached through a chain of embedded structs: `net.ns.inum`.
    fn offset_path(&self, ty: &str, path: &[(&str, &str)]) -> Result<u32, BtfError> {
        let _ = ty;
        path.iter().try_fold(0, |acc, (t, m)| Ok(acc + self.offset_of(t, m)?))
    }

    /// Every offset the kernel programs need.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, BtfError> {
        let sock_common = self.offset_of("sock", "__sk_common")?;
        let skc = |m: &str| Ok::<_, BtfError>(sock_common + self.offset_of("sock_common", m)?);
        Ok(KernelOffsets {
            task_files: self.offset_of("task_struct", "files")?,
            files_fdt: self.offset_of("files_struct", "fdt")?,
            fdt_max_fds: self.offset_of("fdtable", "max_fds")?,
            fdt_fd: self.offset_of("fdtable", "fd")?,
            file_inode: self.offset_of("file", "f_inode")?,
            file_private_data: self.offset_of("file", "private_data")?,
            inode_mode: self.offset_of("inode", "i_mode")?,
            socket_sk: self.offset_of("socket", "sk")?,
            skc_family: skc("skc_family")?,
            skc_num: skc("skc_num")?,
            skc_dport: skc("skc_dport")?,
            skc_rcv_saddr: skc("skc_rcv_saddr")?,
            skc_daddr: skc("skc_daddr")?,
            skc_v6_rcv_saddr: skc("skc_v6_rcv_saddr")?,
            skc_v6_daddr: skc("skc_v6_daddr")?,
            sk_protocol: self.offset_of("sock", "sk_protocol")?,
            sk_type: self.offset_of("sock", "sk_type")?,
            skc_net: skc("skc_net")?,
            net_ns_inum: self.offset_path("net", &[("net", "ns"), ("ns_common", "inum")])?,
            task_tgid: self.offset_of("task_struct", "tgid")?,
            tcp_write_seq: self.offset_of("tcp_sock", "write_seq")?,
            tcp_copied_seq: self.offset_of("tcp_sock", "copied_seq")?,
            ops_kern_sk: self.offset_of("bpf_sock_ops_kern", "sk")?,
            ops_kern_skb: self.offset_of("bpf_sock_ops_kern", "skb")?,
            skb_cb: self.offset_of("sk_buff", "cb")?,
            // Only needed for Go processes' goroutines: without it they keep the thread rule.
            task_fsbase: self
                .offset_path("task_struct", &[("task_struct", "thread"), ("thread_struct", "fsbase")])
                .unwrap_or(0),
            _pad: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob with one struct `s { int a; union { int b; struct { int c; int d; }; }; }`.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0c\0d\0";
        let s = |name: &str| {
            let hay = std::str::from_utf8(strings).unwrap();
            hay.find(&format!("\0{name}\0")).unwrap() as u32 + 1
        };
        let mut t = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| t.extend_from_slice(&w.to_le_bytes()));
        push(&[s("int"), 1 << 24, 4, 32]); // 1: int
        push(&[0, (KIND_STRUCT << 24) | 2, 8, s("c"), 1, 0, s("d"), 1, 32]); // 2: anon struct
        push(&[0, (KIND_UNION << 24) | 2, 8, s("b"), 1, 0, 0, 2, 0]); // 3: anon union
        push(&[s("s"), (KIND_STRUCT << 24) | 2, 12, s("a"), 1, 0, 0, 3, 32]); // 4: s
        let mut out = Vec::new();
        out.extend_from_slice(&[0x9f, 0xeb, 1, 0]);
        for w in [24u32, 0, t.len() as u32, t.len() as u32, strings.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn finds_members_through_anonymous_unions_and_structs() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.offset_of("s", "a").unwrap(), 0);
        assert_eq!(btf.offset_of("s", "b").unwrap(), 4);
        assert_eq!(btf.offset_of("s", "c").unwrap(), 4);
        assert_eq!(btf.offset_of("s", "d").unwrap(), 8);
        assert!(matches!(btf.offset_of("s", "zz"), Err(BtfError::NoMember { .. })));
        assert!(matches!(btf.offset_of("nope", "a"), Err(BtfError::NoType { .. })));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let data = sample();
        for cut in 0..data.len() {
            let _ = Btf::parse(&data[..cut]);
        }
        let mut bad = data.clone();
        bad[8] = 0xff;
        assert!(Btf::parse(&bad).is_err());
    }

    #[test]
    fn resolves_this_kernels_offsets_when_btf_is_present() {
        let Ok(btf) = Btf::from_sys_fs() else { return };
        let off = btf.kernel_offsets().unwrap();
        assert_ne!(off.task_files, 0);
        assert_eq!(off.skc_family, 16, "sock_common.skc_family sits after the address and hash words");
        if cfg!(target_arch = "x86_64") {
            assert_ne!(off.task_fsbase, 0, "task_struct.thread.fsbase");
        }
    }
}
