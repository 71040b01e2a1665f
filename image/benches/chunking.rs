//! Simulation of weekly image updates: bytes a client downloads with arbor's chunk planner, against a
//! single-layer image and an ostree-ext style layout, on the benchmark corpus's update generations.
//!
//! Reads `$ARBOR_BENCH_CORPUS` (default `/var/tmp/arbor-corpus`): `genN/corpus-build.json` for N = 0,
//! 1, ... (consecutive generations that exist; generation N is week N) and `cache/scan/*.json` (per
//! Debian package: name, source package and changelog dates; joined by package name).
//!
//! - Components: every rpm (size = compressed rpm bytes; change probability from its changelog dates
//!   plus the dates of the corpus updates seen so far; source = the Debian source package), the rpm
//!   database (8 MB, changes whenever a package does) and unpackaged content (1 MB, changes every
//!   sixth week).
//! - A package changed in week N when its NEVRA differs from generation N − 1 (or it is new). The
//!   corpus also rewrites the rpm header (build time) of every previously updated package in every
//!   generation, so sha256 differs for packages whose payload is byte-identical; the file objects an
//!   image holds do not change then. The sha256 criterion is reported as a second accounting.
//! - Downloaded in week N: every layer whose membership is new or that holds a changed component, plus
//!   the commit layer (2 MB). Ideal: the changed packages plus the commit layer.
//! - Layouts: arbor with the previous week's plan as prior (with and without source packages), arbor
//!   planning afresh every week, one layer, and ostree-ext's scheme (largest packages alone, the rest in
//!   size order in the remaining layers, unpackaged + rpmdb in one layer, new packages in the last one).

#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::chunking::{
    ChunkPlan, Component, ComponentKind, PlanOptions, PriorLayout, change_probability, expected_download,
    plan_layers, plan_layers_with_sources,
};
use serde_json::Value;

const DEFAULT_CORPUS: &str = "/var/tmp/arbor-corpus";
/// Generations the corpus tool builds (weeks 0..=12).
const MAX_GENERATIONS: usize = 13;
const RPMDB: &str = "arbor/rpmdb";
const UNPACKAGED: &str = "arbor/unpackaged";
const RPMDB_SIZE: u64 = 8_000_000;
const UNPACKAGED_SIZE: u64 = 1_000_000;
/// Unpackaged content changes in every sixth week ("rarely").
const UNPACKAGED_CHANGE_PERIOD: usize = 6;
const COMMIT_LAYER_SIZE: u64 = 2_000_000;
/// 64 layers: the commit layer and 63 chunk layers.
const MAX_CHUNK_LAYERS: usize = 63;
/// ostree-ext: share of the package bins that go to the largest packages, one each.
const OSTREE_EXT_HIGH_SIZE_SHARE: f64 = 0.6;
/// Synthetic components for the timing run.
const TIMING_COMPONENTS: usize = 2000;
const TIMING_RUNS: usize = 5;
const MB: f64 = 1_000_000.0;

type Layout = Vec<Vec<String>>;

#[derive(Debug, Clone)]
struct Rpm {
    nevra: String,
    sha256: String,
    size: u64,
    build_time: i64,
}

#[derive(Debug, Default)]
struct Scan {
    source: String,
    changelog_times: Vec<i64>,
}

fn main() {
    let corpus =
        PathBuf::from(std::env::var("ARBOR_BENCH_CORPUS").unwrap_or_else(|_| DEFAULT_CORPUS.to_string()));
    if let Err(error) = run(&corpus) {
        eprintln!("chunking bench: {error}");
        std::process::exit(1);
    }
}

fn run(corpus: &Path) -> Result<(), String> {
    let mut generations: Vec<BTreeMap<String, Rpm>> = Vec::new();
    for generation in 0..MAX_GENERATIONS {
        let path = corpus.join(format!("gen{generation}/corpus-build.json"));
        if !path.exists() {
            break;
        }
        generations.push(read_generation(&path)?);
    }
    if generations.len() < 2 {
        println!(
            "chunking bench: fewer than two generations under {}: nothing to simulate",
            corpus.display()
        );
        return Ok(());
    }
    let scans = read_scans(&corpus.join("cache/scan"))?;
    let weeks = generations.len() - 1;
    println!(
        "corpus {}: generations 0..={weeks}, {} packages in generation 0, {} with changelogs",
        corpus.display(),
        generations[0].len(),
        generations[0].keys().filter(|name| scans.contains_key(*name)).count()
    );

    // Changed packages per week, by NEVRA (payload) and by sha256 (rpm file).
    let changed_by = |week: usize, same: &dyn Fn(&Rpm, &Rpm) -> bool| -> BTreeSet<String> {
        generations[week]
            .iter()
            .filter(|(name, rpm)| generations[week - 1].get(*name).is_none_or(|old| !same(old, rpm)))
            .map(|(name, _)| name.clone())
            .collect()
    };
    let mut changed_nevra: Vec<BTreeSet<String>> = vec![BTreeSet::new()];
    let mut changed_sha: Vec<BTreeSet<String>> = vec![BTreeSet::new()];
    for week in 1..=weeks {
        changed_nevra.push(changed_by(week, &|a, b| a.nevra == b.nevra));
        changed_sha.push(changed_by(week, &|a, b| a.sha256 == b.sha256));
    }

    // Components of every week.
    let mut weekly_components: Vec<(Vec<Component>, Vec<String>)> = Vec::new();
    for (week, rpms) in generations.iter().enumerate() {
        let reference = rpms.values().map(|rpm| rpm.build_time).max().unwrap_or_default();
        let mut components = Vec::new();
        let mut sources = Vec::new();
        for (name, rpm) in rpms {
            let scan = scans.get(name);
            let mut times: Vec<i64> = scan.map(|scan| scan.changelog_times.clone()).unwrap_or_default();
            for earlier in 1..=week {
                if changed_nevra[earlier].contains(name)
                    && let Some(rpm) = generations[earlier].get(name)
                {
                    times.push(rpm.build_time);
                }
            }
            components.push(Component {
                name: name.clone(),
                kind: ComponentKind::Package,
                size: rpm.size,
                change_probability: change_probability(&times, reference),
            });
            sources.push(scan.map(|scan| scan.source.clone()).unwrap_or_else(|| name.clone()));
        }
        components.push(Component {
            name: RPMDB.to_string(),
            kind: ComponentKind::Rpmdb,
            size: RPMDB_SIZE,
            change_probability: 1.0,
        });
        sources.push(String::new());
        components.push(Component {
            name: UNPACKAGED.to_string(),
            kind: ComponentKind::Unpackaged,
            size: UNPACKAGED_SIZE,
            change_probability: 1.0 / UNPACKAGED_CHANGE_PERIOD as f64,
        });
        sources.push(String::new());
        weekly_components.push((components, sources));
    }

    let options = PlanOptions { max_layers: MAX_CHUNK_LAYERS, ..PlanOptions::default() };
    let mut strategies: Vec<Strategy> = vec![
        Strategy::new("arbor+src", "arbor planner with prior and source packages"),
        Strategy::new("arbor", "arbor planner with prior, no source packages (plan_layers)"),
        Strategy::new("fresh", "arbor planner with source packages, no prior (re-planned every week)"),
        Strategy::new("single", "one layer"),
        Strategy::new("ostree-ext", "ostree-ext style: largest alone, rest by size, new into the last layer"),
    ];
    let mut plan_time = Duration::ZERO;
    let mut predicted = Vec::new();
    for (week, (components, sources)) in weekly_components.iter().enumerate() {
        let previous: Vec<Option<Layout>> =
            strategies.iter().map(|strategy| strategy.layouts.last().cloned()).collect();
        let prior =
            |index: usize| previous[index].as_ref().map(|layers| PriorLayout { layers: layers.clone() });
        let start = Instant::now();
        let plan = plan_layers_with_sources(components, sources, prior(0).as_ref(), &options);
        plan_time += start.elapsed();
        predicted.push(expected_download(&plan, components));
        report_warnings(week, "arbor+src", &plan);
        strategies[0].layouts.push(plan.to_prior().layers);
        let plan = plan_layers(components, prior(1).as_ref(), &options);
        report_warnings(week, "arbor", &plan);
        strategies[1].layouts.push(plan.to_prior().layers);
        let plan = plan_layers_with_sources(components, sources, None, &options);
        strategies[2].layouts.push(plan.to_prior().layers);
        strategies[3].layouts.push(vec![components.iter().map(|component| component.name.clone()).collect()]);
        strategies[4].layouts.push(ostree_ext_layout(components, previous[4].as_ref()));
    }

    let changed_components = |week: usize, packages: &BTreeSet<String>| -> BTreeSet<String> {
        let mut changed = packages.clone();
        if !packages.is_empty() {
            changed.insert(RPMDB.to_string());
        }
        if week.is_multiple_of(UNPACKAGED_CHANGE_PERIOD) {
            changed.insert(UNPACKAGED.to_string());
        }
        changed
    };
    let sizes: Vec<BTreeMap<&str, u64>> = weekly_components
        .iter()
        .map(|(components, _)| {
            components.iter().map(|component| (component.name.as_str(), component.size)).collect()
        })
        .collect();

    println!();
    println!(
        "Downloaded MB per weekly update ({MAX_CHUNK_LAYERS} chunk layers + commit layer of {} MB):",
        COMMIT_LAYER_SIZE as f64 / MB
    );
    let mut header = format!("{:>4} {:>7} {:>8}", "week", "changed", "ideal");
    for strategy in &strategies {
        header.push_str(&format!(" {:>10}", strategy.label));
    }
    header.push_str(&format!(" {:>6} {:>9} {:>8}", "moved", "predicted", "layers"));
    println!("{header}");
    let mut ideal_total = 0.0;
    let mut ideal_total_sha = 0.0;
    let mut totals = vec![0.0; strategies.len()];
    let mut totals_sha = vec![0.0; strategies.len()];
    for week in 1..=weeks {
        let changed = changed_components(week, &changed_nevra[week]);
        let changed_sha_components = changed_components(week, &changed_sha[week]);
        let size = |name: &String| sizes[week].get(name.as_str()).copied().unwrap_or_default() as f64;
        let ideal = changed_nevra[week].iter().map(size).sum::<f64>() + COMMIT_LAYER_SIZE as f64;
        let ideal_sha = changed_sha[week].iter().map(size).sum::<f64>() + COMMIT_LAYER_SIZE as f64;
        ideal_total += ideal;
        ideal_total_sha += ideal_sha;
        let mut line = format!("{week:>4} {:>7} {:>8.1}", changed_nevra[week].len(), ideal / MB);
        for (index, strategy) in strategies.iter().enumerate() {
            let bytes =
                download(&strategy.layouts[week - 1], &strategy.layouts[week], &changed, &sizes[week]);
            let bytes_sha = download(
                &strategy.layouts[week - 1],
                &strategy.layouts[week],
                &changed_sha_components,
                &sizes[week],
            );
            totals[index] += bytes;
            totals_sha[index] += bytes_sha;
            line.push_str(&format!(" {:>10.1}", bytes / MB));
        }
        let arbor = &strategies[0].layouts;
        line.push_str(&format!(
            " {:>6} {:>9.1} {:>8}",
            moved(&arbor[week - 1], &arbor[week]),
            (predicted[week - 1] + COMMIT_LAYER_SIZE as f64) / MB,
            arbor[week].iter().filter(|layer| !layer.is_empty()).count()
        ));
        println!("{line}");
    }
    let mut line = format!("{:>4} {:>7} {:>8.1}", "sum", "", ideal_total / MB);
    for total in &totals {
        line.push_str(&format!(" {:>10.1}", total / MB));
    }
    println!("{line}");
    let mut line = format!("{:>4} {:>7} {:>8}", "/id", "", "1.00x");
    for total in &totals {
        line.push_str(&format!(" {:>9.2}x", total / ideal_total));
    }
    println!("{line}");
    println!();
    println!(
        "sha256 accounting (rpm files that differ, incl. header-only rebuilds): ideal {:.1} MB; {}",
        ideal_total_sha / MB,
        strategies
            .iter()
            .zip(&totals_sha)
            .map(|(strategy, total)| format!(
                "{} {:.1} MB ({:.2}x)",
                strategy.label,
                total / MB,
                total / ideal_total_sha
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for strategy in &strategies {
        println!("  {:>10}: {}", strategy.label, strategy.description);
    }
    println!(
        "arbor+src planning time over {} builds of ~{} components: {:.1} ms in total",
        weekly_components.len(),
        weekly_components[0].0.len(),
        plan_time.as_secs_f64() * 1000.0
    );
    time_synthetic();
    Ok(())
}

struct Strategy {
    label: &'static str,
    description: &'static str,
    layouts: Vec<Layout>,
}

impl Strategy {
    fn new(label: &'static str, description: &'static str) -> Strategy {
        Strategy { label, description, layouts: Vec::new() }
    }
}

fn report_warnings(week: usize, label: &str, plan: &ChunkPlan) {
    for warning in &plan.warnings {
        println!("week {week} {label}: warning: {warning}");
    }
}

/// Bytes downloaded going from `previous` to `current`: layers that are new (by membership) or hold a
/// changed component, plus the commit layer.
fn download(
    previous: &Layout,
    current: &Layout,
    changed: &BTreeSet<String>,
    sizes: &BTreeMap<&str, u64>,
) -> f64 {
    let known: BTreeSet<BTreeSet<&str>> =
        previous.iter().map(|layer| layer.iter().map(String::as_str).collect()).collect();
    let mut bytes = COMMIT_LAYER_SIZE as f64;
    for layer in current.iter().filter(|layer| !layer.is_empty()) {
        let members: BTreeSet<&str> = layer.iter().map(String::as_str).collect();
        if !known.contains(&members) || layer.iter().any(|name| changed.contains(name)) {
            bytes += layer
                .iter()
                .map(|name| sizes.get(name.as_str()).copied().unwrap_or_default() as f64)
                .sum::<f64>();
        }
    }
    bytes
}

/// Components (present in both) that are not in the layer continuing their previous layer.
fn moved(previous: &Layout, current: &Layout) -> usize {
    let layer_of: BTreeMap<&str, usize> = current
        .iter()
        .enumerate()
        .flat_map(|(index, layer)| layer.iter().map(move |name| (name.as_str(), index)))
        .collect();
    previous
        .iter()
        .map(|layer| {
            let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
            for name in layer {
                if let Some(&index) = layer_of.get(name.as_str()) {
                    *votes.entry(index).or_default() += 1;
                }
            }
            votes.values().sum::<usize>() - votes.values().copied().max().unwrap_or(0)
        })
        .sum()
}

/// ostree-ext's scheme, simplified: one bin for unpackaged + rpmdb, one reserved (empty) bin for new
/// packages, the largest packages alone in 60% of the remaining bins, the rest in size order spread over
/// the others. With a prior: removed names are dropped, new ones go into the last bin.
fn ostree_ext_layout(components: &[Component], prior: Option<&Layout>) -> Layout {
    let present: BTreeSet<&str> = components.iter().map(|component| component.name.as_str()).collect();
    if let Some(prior) = prior {
        let mut layout: Layout = prior
            .iter()
            .map(|layer| layer.iter().filter(|name| present.contains(name.as_str())).cloned().collect())
            .collect();
        let placed: BTreeSet<String> = layout.iter().flatten().cloned().collect();
        let new: Vec<String> = components
            .iter()
            .filter(|component| !placed.contains(&component.name))
            .map(|component| component.name.clone())
            .collect();
        match layout.last_mut() {
            Some(last) => last.extend(new),
            None => layout.push(new),
        }
        return layout;
    }
    let mut packages: Vec<&Component> =
        components.iter().filter(|component| component.kind == ComponentKind::Package).collect();
    packages.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
    let bins = MAX_CHUNK_LAYERS - 2;
    let high = ((bins as f64 * OSTREE_EXT_HIGH_SIZE_SHARE) as usize).min(packages.len());
    let mut layout: Layout = packages[..high].iter().map(|component| vec![component.name.clone()]).collect();
    let rest = &packages[high..];
    let medium_bins = bins - high;
    let per_bin = rest.len().div_ceil(medium_bins.max(1)).max(1);
    for chunk in rest.chunks(per_bin) {
        layout.push(chunk.iter().map(|component| component.name.clone()).collect());
    }
    layout.push(
        components
            .iter()
            .filter(|component| component.kind != ComponentKind::Package)
            .map(|component| component.name.clone())
            .collect(),
    );
    layout.push(Vec::new());
    layout
}

/// Plans 2,000 synthetic components (fresh, then with a prior and 5% new) and prints the times.
fn time_synthetic() {
    let mut state: u64 = 0x5eed;
    let mut unit = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut components: Vec<Component> = (0..TIMING_COMPONENTS)
        .map(|i| Component {
            name: format!("package{i:05}"),
            kind: ComponentKind::Package,
            size: (1_000.0 * (1.0 / (0.002 + unit())).powf(1.6)) as u64,
            change_probability: if unit() < 0.8 { 0.02 } else { 0.02 + 0.5 * unit() },
        })
        .collect();
    let options = PlanOptions { max_layers: 126, ..PlanOptions::default() };
    let mut fresh_times = Vec::new();
    let mut plan = ChunkPlan::default();
    for _ in 0..TIMING_RUNS {
        let start = Instant::now();
        plan = plan_layers(&components, None, &options);
        fresh_times.push(start.elapsed());
    }
    for i in 0..TIMING_COMPONENTS / 20 {
        components.push(Component {
            name: format!("new{i:04}"),
            kind: ComponentKind::Package,
            size: 100_000,
            change_probability: 0.05,
        });
    }
    let prior = plan.to_prior();
    let mut prior_times = Vec::new();
    for _ in 0..TIMING_RUNS {
        let start = Instant::now();
        plan = plan_layers(&components, Some(&prior), &options);
        prior_times.push(start.elapsed());
    }
    fresh_times.sort();
    prior_times.sort();
    println!(
        "synthetic {TIMING_COMPONENTS} components, 126 layers: fresh plan median {:.1} ms, with prior (+5% new) median {:.1} ms ({} layers)",
        fresh_times[TIMING_RUNS / 2].as_secs_f64() * 1000.0,
        prior_times[TIMING_RUNS / 2].as_secs_f64() * 1000.0,
        plan.layers.len()
    );
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))
}

fn read_generation(path: &Path) -> Result<BTreeMap<String, Rpm>, String> {
    let json = read_json(path)?;
    let rpms =
        json.get("rpms").and_then(Value::as_array).ok_or_else(|| format!("{}: no rpms", path.display()))?;
    let mut out = BTreeMap::new();
    for rpm in rpms {
        let text = |key: &str| rpm.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        out.insert(
            text("name"),
            Rpm {
                nevra: text("nevra"),
                sha256: text("sha256"),
                size: rpm.get("size").and_then(Value::as_u64).unwrap_or_default(),
                build_time: rpm.get("build_time").and_then(Value::as_i64).unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// Per package name: source package and changelog dates (the scan cache may be missing: no entries).
fn read_scans(directory: &Path) -> Result<BTreeMap<String, Scan>, String> {
    let mut scans = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        println!(
            "no scan cache at {}: every package gets the minimum change probability",
            directory.display()
        );
        return Ok(scans);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let json = read_json(&path)?;
        let Some(name) = json.get("name").and_then(Value::as_str) else { continue };
        let source = json.get("source").and_then(Value::as_str).unwrap_or(name).to_string();
        let changelog_times = json
            .get("changelog_times")
            .and_then(Value::as_array)
            .map(|times| times.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        scans.entry(name.to_string()).or_insert(Scan { source, changelog_times });
    }
    Ok(scans)
}
