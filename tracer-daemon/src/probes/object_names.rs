//! The names in the embedded kernel object against the shared constants of `tracer-common`:
//! aya-ebpf's `#[map(name = …)]` takes only a literal, and a program's name is its function's,
//! so nothing else ties the two sides together. The object exists once `cargo xtask build` (or
//! `cargo xtask test`, which builds it before running this) has built it; without it the test
//! says so and passes.

use std::collections::BTreeSet;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use tracer_common as k;

/// Map, global and program names defined in the object.
struct Names {
    maps: BTreeSet<String>,
    globals: BTreeSet<String>,
    programs: BTreeSet<String>,
}

fn names_in(elf: &[u8]) -> Names {
    let file = object::File::parse(elf).expect("the embedded kernel object is an ELF file");
    let mut names = Names { maps: BTreeSet::new(), globals: BTreeSet::new(), programs: BTreeSet::new() };
    for sym in file.symbols() {
        let Some(index) = sym.section_index() else { continue };
        let section = file.section_by_index(index).expect("symbol's section exists");
        let section = section.name().expect("section name is UTF-8");
        let name = sym.name().expect("symbol name is UTF-8").to_owned();
        if !sym.is_global() || name.is_empty() {
            continue;
        }
        match (sym.kind(), section) {
            (SymbolKind::Data, "maps" | ".maps") => names.maps.insert(name),
            (SymbolKind::Data, ".rodata" | ".data" | ".bss") => names.globals.insert(name),
            // `.text` holds only the compiler's memory helpers (subprograms, not programs).
            (SymbolKind::Text, ".text") => false,
            (SymbolKind::Text, _) => names.programs.insert(name),
            _ => false,
        };
    }
    names
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn object_names_are_the_shared_constants() {
    if super::OBJECT.is_empty() {
        eprintln!("skipped: no kernel object embedded (build it with `cargo xtask build`; `cargo xtask test` does)");
        return;
    }
    let found = names_in(super::OBJECT);
    assert_eq!(found.maps, set(&k::MAP_NAMES), "maps in the object against tracer_common::MAP_NAMES");
    assert_eq!(found.globals, set(&k::GLOBAL_NAMES), "globals in the object against tracer_common::GLOBAL_NAMES");
    assert_eq!(found.programs, set(&k::PROGRAM_NAMES), "programs in the object against tracer_common::PROGRAM_NAMES");
}
