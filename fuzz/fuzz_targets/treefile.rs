//! Fuzzes treefile loading: any bytes, as YAML, JSON or kickstart, as the top-level file and as an
//! include. Loading must never panic; whatever loads must render, and the rendering must load and
//! render to the same text.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use treefiles::{LoadOptions, MemoryLoader, load};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let name = match selector % 3 {
        0 => "manifest.yaml",
        1 => "manifest.json",
        _ => "manifest.ks",
    };
    let options = LoadOptions::for_arch("x86_64");

    let mut loader = MemoryLoader::new();
    loader.insert(name, text.as_ref());
    if let Ok(flattened) = load(&loader, Path::new(name), &options) {
        let rendered = flattened.render();
        let mut again = MemoryLoader::new();
        again.insert("rendered.json", rendered.clone());
        let reloaded = load(&again, Path::new("rendered.json"), &options)
            .unwrap_or_else(|problems| panic!("rendered treefile does not load: {problems}\n{rendered}"));
        assert_eq!(reloaded.render(), rendered, "render is not stable");
    }

    // The same text as an include of a valid top-level file.
    let mut loader = MemoryLoader::new();
    let include = name.replace("manifest", "included");
    loader.insert("top.yaml", format!("ref: fuzz\ninclude: {include}\n"));
    loader.insert(&include, text.as_ref());
    let _ = load(&loader, Path::new("top.yaml"), &options);
});
