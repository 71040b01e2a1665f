//! Fuzzes the RPM payload reader: any bytes (compressed or not) against a fixed header give entries or
//! an error, never a panic, a hang or an allocation the input does not justify.

#![no_main]

use std::io::Read;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tree::pkgcache::payload::{PayloadArchive, decompressed};

/// The header the payloads are read against: a file, a file in a subdirectory, a hardlinked pair, an
/// empty file and a directory, as packages ship them.
fn metadata() -> &'static rpm::PackageMetadata {
    static METADATA: OnceLock<rpm::PackageMetadata> = OnceLock::new();
    METADATA.get_or_init(|| {
        let mut builder = rpm::PackageBuilder::new("tool", "1.0", "MIT", "noarch", "a tool");
        let files: [(&str, &[u8]); 4] = [
            ("/usr/bin/tool", b"#!/bin/sh\n"),
            ("/usr/share/doc/tool/README", b"read me"),
            ("/usr/share/doc/tool/LICENSE", b"MIT"),
            ("/usr/share/tool/empty", b""),
        ];
        for (path, content) in files {
            builder.with_file_contents(content.to_vec(), rpm::FileOptions::new(path)).expect("file");
        }
        builder.build().expect("package").metadata
    })
}

fuzz_target!(|data: &[u8]| {
    let metadata = metadata();
    let entries = metadata.get_file_entries().expect("file entries");
    let Ok(reader) = decompressed(std::io::Cursor::new(data)) else { return };
    let mut archive = PayloadArchive::new(metadata, &entries, reader);
    let mut content = Vec::new();
    while let Ok(Some(entry)) = archive.next_entry() {
        assert!(entry.index < entries.len(), "an entry names a file the header does not have");
        content.clear();
        if archive.content().read_to_end(&mut content).is_err() {
            break;
        }
        assert_eq!(content.len() as u64, entry.content_size, "the content is exactly the entry's size");
    }
});
