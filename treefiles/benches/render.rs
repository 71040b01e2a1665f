//! Benchmark: load + flatten + render a 40-file include tree with 1,500 packages (target: under 20 ms),
//! from disk and from memory. Prints min / median / p95 over many runs.

use std::path::Path;
use std::time::{Duration, Instant};

use treefiles::{FileSystemLoader, LoadOptions, MemoryLoader, SourceLoader, load};

/// Files in the generated tree: the top-level manifest, 3 group files, 36 leaves.
const GROUPS: usize = 3;
const LEAVES_PER_GROUP: usize = 12;
const PACKAGES: usize = 1_500;
const RUNS: usize = 300;

/// The generated tree as (relative path, contents), shaped like a real distribution's manifests.
fn generate_tree() -> Vec<(String, String)> {
    let leaves = GROUPS * LEAVES_PER_GROUP;
    let mut files = Vec::new();
    let groups: Vec<String> = (0..GROUPS).map(|group| format!("manifests/group-{group}.yaml")).collect();
    files.push((
        "manifest.yaml".to_string(),
        format!(
            "ref: bench/${{basearch}}/${{stream}}\nreleasever: 41\nvariables:\n  stream: testing-devel\n  prod: false\n\
             repos: [fedora, fedora-updates]\nautomatic-version-prefix: \"${{releasever}}.<date:%Y%m%d>.dev\"\n\
             add-commit-metadata:\n  bench.stream: ${{stream}}\ninclude:\n{}",
            groups.iter().map(|group| format!("  - {group}\n")).collect::<String>()
        ),
    ));
    for group in 0..GROUPS {
        let own: Vec<usize> = (0..LEAVES_PER_GROUP).map(|leaf| group * LEAVES_PER_GROUP + leaf).collect();
        let (plain, conditional) = own.split_at(LEAVES_PER_GROUP - 2);
        let mut text = String::from("include:\n");
        for leaf in plain {
            text.push_str(&format!("  - leaves/leaf-{leaf}.yaml\n"));
        }
        text.push_str("conditional-include:\n");
        text.push_str(&format!("  - if: prod == false\n    include: leaves/leaf-{}.yaml\n", conditional[0]));
        text.push_str(&format!(
            "  - if: [releasever >= 40, basearch == \"x86_64\"]\n    include: leaves/leaf-{}.yaml\n",
            conditional[1]
        ));
        text.push_str(&format!("postprocess:\n  - |\n    #!/usr/bin/env bash\n    echo group {group}\n"));
        files.push((format!("manifests/group-{group}.yaml"), text));
    }
    let per_leaf = PACKAGES.div_ceil(leaves);
    for leaf in 0..leaves {
        let mut text = String::from("packages:\n");
        for index in leaf * per_leaf..((leaf + 1) * per_leaf).min(PACKAGES) {
            text.push_str(&format!(
                "  - package-{index:04}-{}\n",
                ["libs", "tools", "common", "data"][index % 4]
            ));
        }
        text.push_str(&format!(
            "packages-x86_64: [arch-package-{leaf}]\npackages-aarch64: [arm-package-{leaf}]\n"
        ));
        text.push_str(&format!("units: [leaf-{leaf}.service]\nremove-files: [usr/share/leaf-{leaf}]\n"));
        text.push_str(&format!("postprocess:\n  - |\n    #!/usr/bin/env bash\n    echo leaf {leaf}\n"));
        files.push((format!("manifests/leaves/leaf-{leaf}.yaml"), text));
    }
    files
}

fn measure(name: &str, loader: &dyn SourceLoader, top: &Path) {
    let options = LoadOptions::for_arch("x86_64");
    let check = load(loader, top, &options).unwrap_or_else(|problems| panic!("{problems}"));
    let files = check.sources.len();
    let packages = check.treefile.all_packages().len();
    let rendered_bytes = check.render().len();
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let flattened = load(loader, top, &options).unwrap_or_else(|problems| panic!("{problems}"));
            std::hint::black_box(flattened.render());
            start.elapsed()
        })
        .collect();
    times.sort();
    let milliseconds = |duration: Duration| duration.as_secs_f64() * 1000.0;
    println!(
        "render {name}: {files} files, {packages} packages, {rendered_bytes} bytes rendered; \
         min {:.2} ms, median {:.2} ms, p95 {:.2} ms over {RUNS} runs (target < 20 ms)",
        milliseconds(times[0]),
        milliseconds(times[RUNS / 2]),
        milliseconds(times[RUNS * 95 / 100]),
    );
}

fn main() {
    let tree = generate_tree();
    let directory = std::env::temp_dir().join(format!("arbor-render-bench-{}", std::process::id()));
    for (path, text) in &tree {
        let full = directory.join(path);
        std::fs::create_dir_all(full.parent().unwrap_or(&directory)).expect("creating bench directory");
        std::fs::write(&full, text).expect("writing bench tree");
    }
    measure("from disk", &FileSystemLoader, &directory.join("manifest.yaml"));
    let mut memory = MemoryLoader::new();
    for (path, text) in &tree {
        memory.insert(path, text.as_str());
    }
    measure("from memory", &memory, Path::new("manifest.yaml"));
    let _ = std::fs::remove_dir_all(&directory);
}
