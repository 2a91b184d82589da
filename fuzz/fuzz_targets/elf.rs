//! Fuzzes the uprobe scanner's analysis of files (`uprobes::elf::analyse`: client-library
//! symbols and their file offsets; `uprobes::golang::inspect`: Go build information and the
//! `goid` offset from DWARF) with arbitrary bytes as the file's contents.
//!
//! Input layout: one config byte (bits 0-1: the MySQL flavour the file's name would give:
//! none, libmysqlclient, libmariadb), then the file.
//!
//! Invariants: no panic; each library is reported once, with only traced symbols missing; a
//! Go version read is a short `go…` string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_daemon::reader::decode::Library;
use tracer_daemon::uprobes::{elf, golang};

fuzz_target!(|data: &[u8]| {
    let Some((&config, file)) = data.split_first() else {
        return;
    };
    let flavor = match config & 3 {
        1 => Some(Library::Mysqlclient),
        2 => Some(Library::Mariadb),
        _ => None,
    };
    if let Ok(a) = elf::analyse(file, flavor) {
        assert!(a.found.len() <= 2, "{a:?}");
        for (i, (lib, _)) in a.found.iter().enumerate() {
            assert!(a.found[..i].iter().all(|(l, _)| l != lib), "{lib:?} twice");
        }
        if let Some(f) = flavor {
            assert!(a.found.iter().all(|(l, _)| *l == Library::Hiredis || *l == f));
        }
        for t in &a.targets {
            assert_eq!(t.append, t.symbol == elf::HIREDIS_APPEND);
        }
    }
    if let Some(go) = golang::inspect(file) {
        if let Some(v) = &go.version {
            assert!(v.starts_with("go") && v.len() <= 64, "version {v:?}");
        }
        assert_eq!(go.goid_offset.is_some(), go.source != golang::OffsetSource::Unknown);
    }
});
