//! Fuzzes lockfile parsing as JSON and as YAML: never a panic, and whatever parses is written and
//! read back unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use treefiles::lockfile::Lockfile;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for name in ["manifest-lock.x86_64.json", "manifest-lock.overrides.yaml"] {
        if let Ok(lockfile) = Lockfile::parse(&text, name) {
            let written = lockfile.to_json_string();
            let reread = Lockfile::parse(&written, "rewritten.json")
                .unwrap_or_else(|problems| panic!("rewritten lockfile does not parse: {problems}\n{written}"));
            assert_eq!(reread, lockfile, "lockfile changed through write and read");
            assert_eq!(reread.to_json_string(), written, "writer is not deterministic");
        }
    }
});
