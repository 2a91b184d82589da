//! Symbols of client libraries in ELF files (shared libraries and executables that carry a
//! library statically), read with `object`: file offsets of the traced functions and the
//! library version facts that decide struct offsets.

use std::collections::HashMap;

use object::{Object, ObjectSegment, ObjectSymbol};
use tracer_common as k;

use super::symbols::SYMBOLS;
use crate::reader::decode::{LibFunction, Library};

/// hiredis's internal function every synchronous command path formats its command into.
pub const HIREDIS_APPEND: &str = "__redisAppendCommand";
/// Exported only by hiredis 1.0 and later (RESP3 push replies): tells the struct layout.
const HIREDIS_V1_MARKER: &str = "redisSetPushCallback";
/// Largest file analysed (bytes): executables bigger than this are not searched for symbols.
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// One probe to attach in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub symbol: &'static str,
    /// File offset of the function's first instruction.
    pub offset: u64,
    /// Attach cookie (`tracer_common::lib_cookie`); 0 for `__redisAppendCommand`.
    pub cookie: u64,
    /// `__redisAppendCommand` (entry only, `hiredis_append`) rather than a traced call.
    pub append: bool,
}

/// What a file holds of the traced libraries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    pub targets: Vec<Target>,
    /// Libraries found (by their functions), with the traced symbols they lack.
    pub found: Vec<(Library, Vec<&'static str>)>,
    /// The file has no symbol table at all (stripped).
    pub stripped: bool,
}

/// Virtual address → file offset through the loadable segments, when the address lies in a
/// segment's bytes in the file. Segment bounds come from the file and may be anything: the
/// arithmetic is checked, and an offset past the end of the file is no offset.
pub(crate) fn file_offset(file: &object::File<'_>, addr: u64, file_len: usize) -> Option<u64> {
    file.segments().find_map(|seg| {
        let rel = addr.checked_sub(seg.address())?;
        let (off, fsize) = seg.file_range();
        let offset = off.checked_add(rel)?;
        (rel < seg.size() && rel < fsize && offset < file_len as u64).then_some(offset)
    })
}

/// Finds the traced functions in `data`. `flavor` names the MySQL API implementation
/// (libmysqlclient or libmariadb); executables that carry it statically are reported as
/// libmariadb when they export its `mariadb_` functions.
pub fn analyse(data: &[u8], flavor: Option<Library>) -> Result<Analysis, object::Error> {
    let file = object::File::parse(data)?;
    let mut symbols: HashMap<&str, u64> = HashMap::new();
    let mut any = false;
    for sym in file.dynamic_symbols().chain(file.symbols()) {
        any = true;
        if !sym.is_definition() || sym.address() == 0 {
            continue;
        }
        if let Ok(name) = sym.name() {
            // Versioned names (`mysql_real_query@@libmysqlclient_18`) count by their base name.
            let base = name.split('@').next().unwrap_or(name);
            symbols.entry(base).or_insert(sym.address());
        }
    }
    let mut out = Analysis { stripped: !any, ..Analysis::default() };
    let has = |s: &str| symbols.contains_key(s);
    let hiredis = has("redisCommand") || has("redisvCommand") || has("redisGetReply");
    let mysql = has("mysql_real_query") || has("mysql_query");
    let (reply_str, ctx_errstr) = if has(HIREDIS_V1_MARKER) { (32, 12) } else { (24, 4) };
    let mysql_lib = flavor.unwrap_or(if has("mariadb_get_infov") { Library::Mariadb } else { Library::Mysqlclient });
    for (family, present) in [(Library::Hiredis, hiredis), (mysql_lib, mysql)] {
        if !present {
            continue;
        }
        let mut missing = Vec::new();
        for &(func, id) in LibFunction::ALL.iter() {
            let Some(&(_, fam, name)) = SYMBOLS.iter().find(|e| e.0 == func) else { continue };
            if (fam == Library::Hiredis) != (family == Library::Hiredis) {
                continue;
            }
            let lib_id = match family {
                Library::Hiredis => k::LIB_HIREDIS,
                Library::Mysqlclient => k::LIB_MYSQLCLIENT,
                Library::Mariadb => k::LIB_MARIADB,
            };
            let cookie = match family {
                Library::Hiredis => k::lib_cookie(id, lib_id, reply_str, ctx_errstr),
                _ => {
                    let (errno_off, msg_off) = mysql_error_offsets(family, func);
                    k::mysql_cookie(id, lib_id, errno_off, msg_off)
                }
            };
            match symbols.get(name).and_then(|&a| file_offset(&file, a, data.len())) {
                Some(offset) => out.targets.push(Target { symbol: name, offset, cookie, append: false }),
                None => missing.push(name),
            }
        }
        if family == Library::Hiredis {
            match symbols.get(HIREDIS_APPEND).and_then(|&a| file_offset(&file, a, data.len())) {
                Some(offset) => out.targets.push(Target { symbol: HIREDIS_APPEND, offset, cookie: 0, append: true }),
                None => missing.push(HIREDIS_APPEND),
            }
        }
        out.found.push((family, missing));
    }
    Ok(out)
}

/// Offsets of the error number and message in the handle a MySQL API function takes, for the
/// builds whose layout is known: MariaDB Connector/C 3.x (`libmariadb.so.3`, ABI-stable since
/// 3.0): `MYSQL.net.last_errno` 144, `MYSQL.net.last_error` 151, `MYSQL_STMT.last_errno` 264,
/// `MYSQL_STMT.last_error` 268 (x86-64). libmysqlclient: (0, 0), nothing is read; its errors
/// still come from the wire (ERR packets) when the connection is not encrypted.
pub fn mysql_error_offsets(lib: Library, func: LibFunction) -> (u32, u32) {
    if lib != Library::Mariadb || !cfg!(target_arch = "x86_64") {
        return (0, 0);
    }
    match func {
        LibFunction::MysqlStmtPrepare | LibFunction::MysqlStmtExecute => (264, 268),
        _ => (144, 151),
    }
}

/// The library a mapped file's name says it is, if it is one of the traced ones.
pub fn library_of_path(path: &str) -> Option<Library> {
    let name = path.rsplit('/').next()?;
    if name.starts_with("libhiredis.so") || name.starts_with("libhiredis_ssl.so") {
        return (!name.starts_with("libhiredis_ssl")).then_some(Library::Hiredis);
    }
    if name.starts_with("libmysqlclient.so") {
        return Some(Library::Mysqlclient);
    }
    if name.starts_with("libmariadb.so") {
        return Some(Library::Mariadb);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names() {
        assert_eq!(library_of_path("/usr/lib/x86_64-linux-gnu/libhiredis.so.0.14"), Some(Library::Hiredis));
        assert_eq!(library_of_path("/usr/lib/libhiredis.so.1.1.0"), Some(Library::Hiredis));
        assert_eq!(library_of_path("/usr/lib/libhiredis_ssl.so.1.1.0"), None);
        assert_eq!(library_of_path("/usr/lib/x86_64-linux-gnu/libmariadb.so.3"), Some(Library::Mariadb));
        assert_eq!(library_of_path("/usr/lib64/libmysqlclient.so.21"), Some(Library::Mysqlclient));
        assert_eq!(library_of_path("/usr/lib/libc.so.6"), None);
    }

    /// A little-endian ELF64 shared object with one `PT_LOAD` segment at `vaddr` of `memsz`
    /// bytes (as many claimed in the file, from its start) and one defined function `redisCommand` at
    /// `vaddr + sym_off`, in `.symtab`.
    fn tiny_elf(vaddr: u64, memsz: u64, sym_off: u64) -> Vec<u8> {
        let strtab = b"\0redisCommand\0";
        let shstrtab = b"\0.symtab\0.strtab\0.shstrtab\0";
        let (ph_off, sym_at) = (64u64, 64 + 56u64);
        let str_at = sym_at + 48;
        let shstr_at = str_at + strtab.len() as u64;
        let sh_at = (shstr_at + shstrtab.len() as u64).next_multiple_of(8);
        let total = sh_at + 4 * 64;
        let mut f = Vec::new();
        f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        f.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
        f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // entry
        f.extend_from_slice(&ph_off.to_le_bytes());
        f.extend_from_slice(&sh_at.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        for v in [64u16, 56, 1, 64, 4, 3] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        // PT_LOAD, r-x, from the start of the file.
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&5u32.to_le_bytes());
        for v in [0, vaddr, vaddr, memsz, memsz, 0x1000] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        // .symtab: the null symbol, then redisCommand (global function in section 1).
        f.extend_from_slice(&[0; 24]);
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&[0x12, 0]);
        f.extend_from_slice(&1u16.to_le_bytes());
        f.extend_from_slice(&vaddr.wrapping_add(sym_off).to_le_bytes());
        f.extend_from_slice(&16u64.to_le_bytes());
        f.extend_from_slice(strtab);
        f.extend_from_slice(shstrtab);
        f.resize(sh_at as usize, 0);
        // Section headers: null, .symtab, .strtab, .shstrtab.
        let sections: [(u32, u32, u64, u64, u32, u32, u64); 4] = [
            (0, 0, 0, 0, 0, 0, 0),
            (1, 2, sym_at, 48, 2, 1, 24),
            (9, 3, str_at, strtab.len() as u64, 0, 0, 0),
            (17, 3, shstr_at, shstrtab.len() as u64, 0, 0, 0),
        ];
        for (name, kind, offset, size, link, info, entsize) in sections {
            f.extend_from_slice(&name.to_le_bytes());
            f.extend_from_slice(&kind.to_le_bytes());
            for v in [0u64, 0, offset, size] {
                f.extend_from_slice(&v.to_le_bytes());
            }
            f.extend_from_slice(&link.to_le_bytes());
            f.extend_from_slice(&info.to_le_bytes());
            f.extend_from_slice(&8u64.to_le_bytes());
            f.extend_from_slice(&entsize.to_le_bytes());
        }
        assert_eq!(f.len() as u64, total);
        f
    }

    fn redis_command_offset(data: &[u8]) -> Option<u64> {
        let a = analyse(data, None).unwrap();
        assert_eq!(a.found.first().map(|f| f.0), Some(Library::Hiredis), "{a:?}");
        a.targets.iter().find(|t| t.symbol == "redisCommand").map(|t| t.offset)
    }

    #[test]
    fn finds_a_symbol_through_its_segment() {
        assert_eq!(redis_command_offset(&tiny_elf(0x40_0000, 0x1000, 0x40)), Some(0x40));
    }

    /// Found by the `elf` fuzz target: a segment whose end passes the top of the address
    /// space overflowed the bounds check (a panic in debug builds, a wrong answer in release).
    #[test]
    fn a_segment_past_the_end_of_the_address_space_is_not_a_panic() {
        let top = u64::MAX - 0xfff;
        assert_eq!(redis_command_offset(&tiny_elf(top, 0x2000, 0x40)), Some(0x40));
    }

    /// An address inside the segment's memory but past the end of the file has no file offset.
    #[test]
    fn an_offset_past_the_end_of_the_file_is_missing() {
        assert_eq!(redis_command_offset(&tiny_elf(0x40_0000, 0x10_0000, 0x8000)), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(analyse(b"not an elf file", None).is_err());
    }

    /// Debian's libraries, when installed: every traced symbol is found.
    #[test]
    fn finds_the_symbols_of_installed_libraries() {
        for (path, lib) in [
            ("/usr/lib/x86_64-linux-gnu/libhiredis.so.0.14", Library::Hiredis),
            ("/usr/lib/x86_64-linux-gnu/libmariadb.so.3", Library::Mariadb),
        ] {
            let Ok(data) = std::fs::read(path) else { continue };
            let a = analyse(&data, Some(lib)).unwrap();
            assert_eq!(a.found.len(), 1, "{path}: {a:?}");
            assert!(a.found[0].1.is_empty(), "{path}: missing {:?}", a.found[0].1);
            assert!(a.targets.iter().all(|t| t.offset > 0));
        }
    }

    /// Debian's redis-benchmark carries hiredis statically (its symbols are in `.dynsym`).
    #[test]
    fn redis_benchmark_is_a_static_hiredis_carrier() {
        let Ok(data) = std::fs::read("/usr/bin/redis-benchmark") else { return };
        let a = analyse(&data, None).unwrap();
        assert_eq!(a.found.first().map(|f| f.0), Some(Library::Hiredis), "{a:?}");
        assert!(a.targets.iter().any(|t| t.symbol == "redisGetReply"));
    }
}
