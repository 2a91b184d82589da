//! Go executables: recognised by their build information (the `.go.buildinfo` section, kept in
//! stripped binaries too; `runtime.buildVersion` in older ones), and the byte offset of `goid`
//! in the runtime's `g` struct, from the executable's DWARF when present, else from a table by
//! Go version. The kernel programs read the current goroutine through it (`GO_PROCESSES`), so
//! that Go programs get causality by goroutine rather than by thread.

use object::{Architecture, Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// What a Go executable tells about its runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoRuntime {
    /// The Go version it was built with (`go1.19.8`), when readable.
    pub version: Option<String>,
    /// Byte offset of `runtime.g.goid`, when known for this build.
    pub goid_offset: Option<u32>,
    /// Where the offset came from.
    pub source: OffsetSource,
    /// The grpc-go streams the kernel can follow in it.
    pub grpc: super::grpcgo::Grpc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSource {
    /// The executable's own DWARF (`runtime.g`, member `goid`).
    Dwarf,
    /// The table of known layouts by Go version (stripped executables).
    Table,
    /// Neither: the process keeps the thread rule.
    Unknown,
}

/// Start of the build information blob (`.go.buildinfo`), 16-byte aligned.
const BUILDINFO_MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// `runtime.g` layouts on amd64: `goid` follows `stack`, `stackguard0/1`, `_panic`, `_defer`,
/// `m`, `sched` (7 words), `syscallsp`, `syscallpc`, `stktopsp`, `param`, `atomicstatus` and
/// `stackLock`, unchanged from Go 1.17 to 1.22 (`runtime/runtime2.go`). 1.19 is checked against
/// a built executable's DWARF by the tests.
const GOID_OFFSETS: &[Layout] = &[Layout { first: (1, 17), last: (1, 22), goid: 152 }];

/// The `goid` offset of the Go releases `first..=last` (major, minor).
struct Layout {
    first: (u32, u32),
    last: (u32, u32),
    goid: u32,
}
/// Largest version string read from build information.
const MAX_VERSION: usize = 64;

/// Whether `data` is a Go executable, and what is known of its runtime. `None` for other files
/// (and for Go executables of another architecture than x86-64, whose thread-local `g` the
/// kernel programs do not read).
pub fn inspect(data: &[u8]) -> Option<GoRuntime> {
    let file = object::File::parse(data).ok()?;
    if file.architecture() != Architecture::X86_64 {
        return None;
    }
    let version = match file.section_by_name(".go.buildinfo") {
        Some(s) => buildinfo_version(&file, s.data().ok()?),
        None => {
            // Before build information had a section of its own: the runtime's symbols.
            let has_runtime = file.symbols().any(|s| s.name() == Ok("runtime.goexit"));
            if !has_runtime {
                return None;
            }
            symbol_version(&file)
        }
    };
    let grpc = super::grpcgo::inspect(&file, data.len());
    if let Some(off) = dwarf_goid_offset(&file) {
        return Some(GoRuntime { version, goid_offset: Some(off), source: OffsetSource::Dwarf, grpc });
    }
    let (goid_offset, source) = match version.as_deref().and_then(table_goid_offset) {
        Some(off) => (Some(off), OffsetSource::Table),
        None => (None, OffsetSource::Unknown),
    };
    Some(GoRuntime { version, goid_offset, source, grpc })
}

/// `(major, minor)` of a `go1.19.8` / `go1.21rc2` / `go1.22.0 X:…` version string.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let rest = v.strip_prefix("go")?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The `goid` offset of the table for a version string.
pub fn table_goid_offset(version: &str) -> Option<u32> {
    let v = parse_version(version)?;
    GOID_OFFSETS.iter().find(|l| v >= l.first && v <= l.last).map(|l| l.goid)
}

/// The version in a build information blob: inline (Go 1.18 and later, flag bit 2) as a
/// varint-prefixed string at byte 32, or (older) through a pointer to a Go string header.
fn buildinfo_version(file: &object::File<'_>, blob: &[u8]) -> Option<String> {
    if blob.len() < 32 || &blob[..14] != BUILDINFO_MAGIC {
        return None;
    }
    let (ptr_size, flags) = (blob[14] as usize, blob[15]);
    if flags & 2 != 0 {
        let (len, n) = varint(&blob[32..])?;
        let start = 32 + n;
        let bytes = blob.get(start..start.checked_add(len as usize)?)?;
        return version_string(bytes);
    }
    if ptr_size != 8 || flags & 1 != 0 {
        return None;
    }
    let header = u64::from_le_bytes(blob[16..24].try_into().ok()?);
    go_string_at(file, header)
}

/// The version string `runtime.buildVersion` (a Go string header) points to.
fn symbol_version(file: &object::File<'_>) -> Option<String> {
    let sym = file.symbols().find(|s| s.name() == Ok("runtime.buildVersion"))?;
    go_string_at(file, sym.address())
}

/// The Go string whose header (pointer, length; little-endian, 8 bytes each) is at `addr`.
fn go_string_at(file: &object::File<'_>, addr: u64) -> Option<String> {
    let header = read_virtual(file, addr, 16)?;
    let ptr = u64::from_le_bytes(header[..8].try_into().ok()?);
    let len = u64::from_le_bytes(header[8..16].try_into().ok()?) as usize;
    if len > MAX_VERSION {
        return None;
    }
    version_string(read_virtual(file, ptr, len)?)
}

fn version_string(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    (s.starts_with("go") && s.len() <= MAX_VERSION).then(|| s.to_string())
}

/// `len` bytes at virtual address `addr` of the file's loadable segments.
fn read_virtual<'d>(file: &object::File<'d>, addr: u64, len: usize) -> Option<&'d [u8]> {
    file.segments().find_map(|seg| {
        let data = seg.data().ok()?;
        let start = addr.checked_sub(seg.address())? as usize;
        data.get(start..start.checked_add(len)?)
    })
}

/// An unsigned LEB128 varint and the bytes it took.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().take(10).enumerate() {
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The data of a DWARF section, decompressed when the linker compressed it (`SHF_COMPRESSED`,
/// or the older `.zdebug_*` sections Go wrote before 1.20).
fn dwarf_section(file: &object::File<'_>, name: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    if let Some(s) = file.section_by_name(name) {
        let c = s.compressed_data().ok()?;
        return match c.format {
            object::CompressionFormat::None => Some(std::borrow::Cow::Owned(c.data.to_vec())),
            object::CompressionFormat::Zlib => inflate(c.data, c.uncompressed_size).map(std::borrow::Cow::Owned),
            _ => None,
        };
    }
    let z = file.section_by_name(&name.replacen(".debug_", ".zdebug_", 1))?;
    let data = z.data().ok()?;
    // "ZLIB", the uncompressed size (8 bytes, big-endian), then a zlib stream.
    if data.len() < 12 || &data[..4] != b"ZLIB" {
        return None;
    }
    let size = u64::from_be_bytes(data[4..12].try_into().ok()?);
    inflate(&data[12..], size).map(std::borrow::Cow::Owned)
}

/// Largest DWARF section decompressed (bytes).
const MAX_DWARF_SECTION: u64 = 256 * 1024 * 1024;

fn inflate(data: &[u8], size: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    if size > MAX_DWARF_SECTION {
        return None;
    }
    let mut out = Vec::with_capacity(size as usize);
    flate2::read::ZlibDecoder::new(data).take(size).read_to_end(&mut out).ok()?;
    Some(out)
}

/// `runtime.g`'s member `goid` in the executable's DWARF.
fn dwarf_goid_offset(file: &object::File<'_>) -> Option<u32> {
    dwarf_members(file, &[("runtime.g", "goid")])[0]
}

/// Whether a DWARF type name is `wanted`, or `wanted` under a longer import path (a vendored
/// copy: `example.com/app/vendor/google.golang.org/grpc/...`).
fn type_name_is(name: &[u8], wanted: &str) -> bool {
    let w = wanted.as_bytes();
    name == w || (name.len() > w.len() && name.ends_with(w) && name[name.len() - w.len() - 1] == b'/')
}

/// Byte offsets of struct members in the executable's DWARF: for each (struct type, member) of
/// `wanted`, the offset in the first definition of the struct that has the member; `None` when
/// the executable has no DWARF or no such member. One walk over the entries, which stops once
/// every offset is found.
pub(crate) fn dwarf_members(file: &object::File<'_>, wanted: &[(&str, &str)]) -> Vec<Option<u32>> {
    let mut out = vec![None; wanted.len()];
    let (Some(info), Some(abbrev)) = (dwarf_section(file, ".debug_info"), dwarf_section(file, ".debug_abbrev")) else {
        return out;
    };
    let str_section = dwarf_section(file, ".debug_str");
    let empty: &[u8] = &[];
    let endian = gimli::RunTimeEndian::Little;
    let Ok(dwarf) = gimli::Dwarf::load(|id| -> Result<gimli::EndianSlice<'_, gimli::RunTimeEndian>, ()> {
        let data: &[u8] = match id {
            gimli::SectionId::DebugInfo => &info,
            gimli::SectionId::DebugAbbrev => &abbrev,
            gimli::SectionId::DebugStr => str_section.as_deref().unwrap_or(empty),
            _ => empty,
        };
        Ok(gimli::EndianSlice::new(data, endian))
    }) else {
        return out;
    };
    // Only the entries are walked (`Dwarf::unit` would also want the line programs).
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(abbrevs) = header.abbreviations(&dwarf.debug_abbrev) else { continue };
        let mut entries = header.entries(&abbrevs);
        // Inside a wanted struct: its depth and the indices of `wanted` it names.
        let mut inside: Option<(isize, Vec<usize>)> = None;
        while let Ok(Some(entry)) = entries.next_dfs() {
            let depth = entry.depth();
            if inside.as_ref().is_some_and(|(d, _)| depth <= *d) {
                inside = None;
            }
            let name = match entry.attr_value(gimli::DW_AT_name) {
                Some(gimli::AttributeValue::String(s)) => Some(s),
                Some(gimli::AttributeValue::DebugStrRef(at)) => dwarf.debug_str.get_str(at).ok(),
                _ => None,
            };
            let Some(name) = name else { continue };
            match (&inside, entry.tag()) {
                (None, gimli::DW_TAG_structure_type) => {
                    let idx: Vec<usize> = (0..wanted.len())
                        .filter(|&i| out[i].is_none() && type_name_is(name.slice(), wanted[i].0))
                        .collect();
                    if !idx.is_empty() {
                        inside = Some((depth, idx));
                    }
                }
                (Some((d, idx)), gimli::DW_TAG_member) if depth == d + 1 => {
                    for &i in idx {
                        if name.slice() == wanted[i].1.as_bytes() {
                            out[i] = member_offset(entry.attr_value(gimli::DW_AT_data_member_location));
                        }
                    }
                    if out.iter().all(Option::is_some) {
                        return out;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn member_offset<R: gimli::Reader>(v: Option<gimli::AttributeValue<R>>) -> Option<u32> {
    match v? {
        gimli::AttributeValue::Udata(v) => u32::try_from(v).ok(),
        gimli::AttributeValue::Data1(v) => Some(v as u32),
        gimli::AttributeValue::Data2(v) => Some(v as u32),
        gimli::AttributeValue::Data4(v) => Some(v),
        gimli::AttributeValue::Sdata(v) => u32::try_from(v).ok(),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("go1.19.8"), Some((1, 19)));
        assert_eq!(parse_version("go1.21rc2"), Some((1, 21)));
        assert_eq!(parse_version("go1.22.0 X:loopvar"), Some((1, 22)));
        assert_eq!(parse_version("devel +abc"), None);
        assert_eq!(table_goid_offset("go1.19.8"), Some(152));
        assert_eq!(table_goid_offset("go1.16.15"), None, "not in the table: DWARF only");
        assert_eq!(table_goid_offset("go1.30.1"), None, "unknown layouts are not guessed");
    }

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x08]), Some((8, 1)));
        assert_eq!(varint(&[0xe5, 0x01]), Some((229, 2)));
        assert_eq!(varint(&[0x80; 12]), None);
    }

    #[test]
    fn garbage_and_other_programs_are_not_go() {
        assert_eq!(inspect(b"not an elf file"), None);
        let me = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(inspect(&me), None, "a Rust executable");
    }

    /// Whether Debian's Go is installed (tests that build Go programs pass without it).
    pub(crate) fn have_go() -> bool {
        std::process::Command::new("go").arg("version").output().is_ok()
    }

    /// Builds `src` in GOPATH mode into `dir/out` with extra `flags`; the executable's bytes.
    pub(crate) fn go_build(src: &std::path::Path, dir: &std::path::Path, out: &str, flags: &[&str]) -> Vec<u8> {
        let bin = dir.join(out);
        let st = std::process::Command::new("go")
            .arg("build")
            .args(flags)
            .arg("-o")
            .arg(&bin)
            .arg(src)
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", std::env::temp_dir().join("tracer-unit-gocache"))
            .env("GOFLAGS", "-p=2")
            .status()
            .unwrap();
        assert!(st.success(), "go build {}", src.display());
        std::fs::read(&bin).unwrap()
    }

    /// Builds a Go program with Debian's Go when it is installed, with and without symbols and
    /// DWARF: the offset comes from DWARF, and from the table once stripped, and both agree.
    #[test]
    fn finds_goid_in_go_executables_when_go_is_installed() {
        if !have_go() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("tracer-golang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("main.go");
        std::fs::write(&src, "package main\n\nfunc main() { println(\"hi\") }\n").unwrap();
        let build = |out: &str, flags: &[&str]| go_build(&src, &dir, out, flags);
        let full = inspect(&build("full", &[])).expect("a Go executable");
        let stripped = inspect(&build("stripped", &["-ldflags=-s -w"])).expect("stripped: still Go");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(full.source, OffsetSource::Dwarf, "{full:?}");
        assert!(full.version.as_deref().is_some_and(|v| v.starts_with("go1.")), "{full:?}");
        assert_eq!(stripped.version, full.version);
        assert_eq!(stripped.source, OffsetSource::Table, "{stripped:?}");
        assert_eq!(stripped.goid_offset, full.goid_offset, "the table agrees with DWARF");
    }
}
