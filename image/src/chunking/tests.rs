//! Unit tests of the chunk planner.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

const MB: u64 = 1_000_000;
const KB: u64 = 1_000;

fn package(name: &str, size: u64, probability: f64) -> Component {
    Component { name: name.to_string(), kind: ComponentKind::Package, size, change_probability: probability }
}

fn special(name: &str, kind: ComponentKind, size: u64, probability: f64) -> Component {
    Component { name: name.to_string(), kind, size, change_probability: probability }
}

fn options(max_layers: usize) -> PlanOptions {
    PlanOptions { max_layers, ..PlanOptions::default() }
}

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `count` packages with heavy-tailed sizes and mostly low probabilities, plus rpmdb and unpackaged.
fn corpus(count: usize, seed: u64) -> Vec<Component> {
    let mut rng = Rng(seed);
    let mut components: Vec<Component> = (0..count)
        .map(|i| {
            let size = (KB as f64 * (1.0 / (0.002 + rng.unit())).powf(1.6)) as u64;
            let probability = if rng.unit() < 0.8 { 0.02 } else { 0.02 + 0.5 * rng.unit() };
            package(&format!("pkg{i:05}"), size, probability)
        })
        .collect();
    components.push(special("arbor/rpmdb", ComponentKind::Rpmdb, 8 * MB, 1.0));
    components.push(special("arbor/unpackaged", ComponentKind::Unpackaged, MB, 0.05));
    components
}

/// Checks the invariants every plan must satisfy.
fn assert_valid(plan: &ChunkPlan, components: &[Component], max_layers: usize) {
    let names: BTreeSet<&str> = components.iter().map(|component| component.name.as_str()).collect();
    let mut placed: BTreeMap<&str, usize> = BTreeMap::new();
    assert!(plan.layers.len() <= max_layers.max(1), "{} layers > {max_layers}", plan.layers.len());
    for (index, layer) in plan.layers.iter().enumerate() {
        assert!(!layer.components.is_empty(), "empty layer {index}");
        let mut sorted = layer.components.clone();
        sorted.sort();
        assert_eq!(sorted, layer.components, "layer {index} not sorted");
        assert_eq!(layer.description, describe(&layer.components));
        for name in &layer.components {
            assert!(placed.insert(name, index).is_none(), "{name} placed twice");
            assert!(names.contains(name.as_str()), "{name} is not a component");
        }
    }
    assert_eq!(placed.len(), names.len(), "not every component placed");
    let specials = components.iter().filter(|component| component.kind.is_special()).count();
    let packages = names.len() - specials;
    if specials + usize::from(packages > 0) <= max_layers {
        for component in components.iter().filter(|component| component.kind.is_special()) {
            let layer = &plan.layers[placed[component.name.as_str()]];
            assert_eq!(layer.components, vec![component.name.clone()], "{} not alone", component.name);
        }
    }
}

/// Components that left the layer continuing their prior layer (the plan layer holding most of it).
fn moved(prior: &PriorLayout, plan: &ChunkPlan) -> usize {
    let layer_of: BTreeMap<&str, usize> = plan
        .layers
        .iter()
        .enumerate()
        .flat_map(|(index, layer)| layer.components.iter().map(move |name| (name.as_str(), index)))
        .collect();
    let mut moved = 0;
    for names in &prior.layers {
        let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
        for name in names {
            if let Some(&layer) = layer_of.get(name.as_str()) {
                *votes.entry(layer).or_default() += 1;
            }
        }
        let kept = votes.values().copied().max().unwrap_or(0);
        moved += votes.values().sum::<usize>() - kept;
    }
    moved
}

fn layer_with<'a>(plan: &'a ChunkPlan, name: &str) -> &'a PlannedLayer {
    plan.layers.iter().find(|layer| layer.components.iter().any(|n| n == name)).expect("placed")
}

#[test]
fn change_probability_table() {
    let now = 1_800_000_000;
    let week = WEEK_SECONDS;
    let window_weeks = CHANGE_WINDOW_SECONDS as f64 / WEEK_SECONDS as f64;
    let poisson = |weeks: f64| 1.0 - (-weeks / window_weeks).exp();
    let weekly: Vec<i64> = (0..52).map(|w| now - w * week).collect();
    let cases: Vec<(&str, Vec<i64>, f64)> = vec![
        ("no changelog", vec![], MIN_CHANGE_PROBABILITY),
        ("one entry now", vec![now], MIN_CHANGE_PROBABILITY.max(poisson(1.0))),
        (
            "only old entries",
            vec![now - CHANGE_WINDOW_SECONDS, now - 3 * CHANGE_WINDOW_SECONDS],
            MIN_CHANGE_PROBABILITY,
        ),
        (
            "three entries in one week",
            vec![now, now - 1, now - 2 * 86_400],
            MIN_CHANGE_PROBABILITY.max(poisson(1.0)),
        ),
        ("ten distinct weeks", (0..10).map(|w| now - w * 3 * week).collect(), poisson(10.0)),
        ("every week", weekly, poisson(52.0)),
        ("entry after the reference", vec![now + 30 * 86_400, now - 10 * week], poisson(2.0)),
        ("extreme times", vec![i64::MIN, i64::MAX, 0], MIN_CHANGE_PROBABILITY),
    ];
    for (label, times, expected) in cases {
        let p = change_probability(&times, now);
        assert!((p - expected).abs() < 1e-12, "{label}: {p} != {expected}");
        assert!((0.0..=1.0).contains(&p), "{label}");
    }
    assert_eq!(change_probability(&[i64::MAX], i64::MIN), MIN_CHANGE_PROBABILITY.max(poisson(1.0)));
}

#[test]
fn descriptions() {
    let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect::<Vec<_>>();
    for (list, expected) in [
        (names(&["bash"]), "bash"),
        (names(&["bash", "zsh"]), "bash and zsh"),
        (names(&["a", "b", "c"]), "3 components"),
        (names(&[]), "no components"),
    ] {
        assert_eq!(describe(&list), expected);
    }
    let components = vec![
        package("bash", MB, 0.1),
        package("zsh", MB, 0.1),
        special("arbor/rpmdb", ComponentKind::Rpmdb, MB, 1.0),
    ];
    let plan = plan_layers(&components, None, &options(2));
    assert_eq!(layer_with(&plan, "arbor/rpmdb").description, "arbor/rpmdb");
    assert_eq!(layer_with(&plan, "bash").description, "bash and zsh");
}

#[test]
fn expected_download_matches_formula() {
    let components = vec![package("a", 100, 0.5), package("b", 300, 0.5), package("c", 1000, 0.1)];
    let plan = ChunkPlan {
        layers: vec![
            PlannedLayer { components: vec!["a".into(), "b".into()], description: String::new() },
            PlannedLayer { components: vec!["c".into(), "unknown".into()], description: String::new() },
        ],
        warnings: Vec::new(),
    };
    let expected = (1.0 - 0.5 * 0.5) * 400.0 + 0.1 * 1000.0;
    assert!((expected_download(&plan, &components) - expected).abs() < 1e-9);
}

#[test]
fn plans_are_valid_for_all_budgets() {
    let cases: Vec<(usize, usize, u64)> = vec![
        // (packages, max_layers, seed)
        (0, 4, 1),
        (1, 4, 2),
        (3, 4, 3),
        (10, 0, 4),
        (10, 1, 5),
        (10, 2, 6),
        (10, 3, 7),
        (50, 4, 8),
        (50, 100, 9),
        (300, 63, 10),
        (300, 126, 11),
    ];
    for (count, max_layers, seed) in cases {
        let components = corpus(count, seed);
        let fresh = plan_layers(&components, None, &options(max_layers));
        assert_valid(&fresh, &components, max_layers);
        if max_layers == 0 {
            assert!(!fresh.warnings.is_empty());
        }
        // Replanning on top of itself, and with a changed set of components.
        let again = plan_layers(&components, Some(&fresh.to_prior()), &options(max_layers));
        assert_valid(&again, &components, max_layers);
        let mut changed = corpus(count + count / 5, seed + 100);
        changed.retain(|component| !component.name.ends_with('7'));
        let next = plan_layers(&changed, Some(&fresh.to_prior()), &options(max_layers));
        assert_valid(&next, &changed, max_layers);
    }
}

#[test]
fn deterministic_and_independent_of_input_order() {
    let components = corpus(400, 42);
    let mut reversed = components.clone();
    reversed.reverse();
    let mut rng = Rng(7);
    let mut shuffled = components.clone();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let first = plan_layers(&components, None, &options(63));
    for input in [&components, &reversed, &shuffled] {
        assert_eq!(plan_layers(input, None, &options(63)), first);
    }
    let mut next = corpus(450, 43);
    next.truncate(420);
    let prior = first.to_prior();
    let with_prior = plan_layers(&next, Some(&prior), &options(63));
    next.reverse();
    assert_eq!(plan_layers(&next, Some(&prior), &options(63)), with_prior);
}

#[test]
fn special_kinds_get_their_own_layer() {
    let mut components = corpus(100, 5);
    components.push(special("arbor/kernel", ComponentKind::Kernel, 60 * MB, 0.2));
    for max_layers in [4, 5, 10, 63] {
        let plan = plan_layers(&components, None, &options(max_layers));
        assert_valid(&plan, &components, max_layers);
        for name in ["arbor/kernel", "arbor/rpmdb", "arbor/unpackaged"] {
            assert_eq!(layer_with(&plan, name).components, vec![name.to_string()]);
        }
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }
    // Too small a budget: the layer limit wins, with a warning.
    let plan = plan_layers(&components, None, &options(2));
    assert_valid(&plan, &components, 2);
    assert!(!plan.warnings.is_empty());
}

#[test]
fn big_or_volatile_alone_small_stable_grouped() {
    let mut components = vec![
        package("kernel-ish", 100 * MB, 0.3),
        package("big-stable", 50 * MB, 0.02),
        special("arbor/rpmdb", ComponentKind::Rpmdb, 8 * MB, 1.0),
    ];
    for i in 0..30 {
        components.push(package(&format!("small-stable{i:02}"), 100 * KB, 0.02));
    }
    for i in 0..5 {
        components.push(package(&format!("small-volatile{i}"), 100 * KB, 0.4));
    }
    let plan = plan_layers(&components, None, &options(6));
    assert_valid(&plan, &components, 6);
    assert_eq!(plan.layers.len(), 6);
    assert_eq!(layer_with(&plan, "kernel-ish").components, vec!["kernel-ish".to_string()]);
    assert_eq!(layer_with(&plan, "big-stable").components, vec!["big-stable".to_string()]);
    let volatile = layer_with(&plan, "small-volatile0");
    assert!(volatile.components.iter().all(|name| !name.starts_with("small-stable")), "{volatile:?}");
    // The cost is far below putting everything into one layer.
    let single = ChunkPlan {
        layers: vec![PlannedLayer {
            components: components.iter().map(|component| component.name.clone()).collect(),
            description: String::new(),
        }],
        warnings: Vec::new(),
    };
    assert!(expected_download(&plan, &components) < 0.5 * expected_download(&single, &components));
}

#[test]
fn prior_kept_when_nothing_changed() {
    for (count, max_layers, seed) in [(5, 63, 1), (100, 10, 2), (400, 63, 3), (2000, 126, 4)] {
        let components = corpus(count, seed);
        let fresh = plan_layers(&components, None, &options(max_layers));
        let again = plan_layers(&components, Some(&fresh.to_prior()), &options(max_layers));
        assert_eq!(again, fresh, "{count} components, {max_layers} layers");
        assert!(again.warnings.is_empty());
        // Ten binaries per source.
        let sources: Vec<String> = components
            .iter()
            .map(|component| component.name.chars().take(component.name.len().saturating_sub(1)).collect())
            .collect();
        let fresh = plan_layers_with_sources(&components, &sources, None, &options(max_layers));
        let again =
            plan_layers_with_sources(&components, &sources, Some(&fresh.to_prior()), &options(max_layers));
        assert_eq!(again, fresh, "with sources: {count} components, {max_layers} layers");
    }
}

#[test]
fn removed_components_dropped_and_reserved_layer_ignored() {
    let components = vec![package("a", MB, 0.02), package("b", MB, 0.02), package("c", MB, 0.3)];
    let prior = PriorLayout {
        layers: vec![
            vec!["a".into(), "b".into(), "gone".into()],
            vec!["c".into()],
            vec!["also-gone".into()],
            vec![String::new()],
        ],
    };
    let plan = plan_layers(&components, Some(&prior), &options(4));
    assert_valid(&plan, &components, 4);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert_eq!(plan.to_prior().layers, vec![vec!["a".to_string(), "b".to_string()], vec!["c".to_string()]]);
}

#[test]
fn new_components_are_placed_by_cost() {
    // Budget full: a stable big layer last, volatile small layers before it.
    let mut components = vec![package("vol-a", MB, 0.5), package("vol-b", MB, 0.5)];
    let mut last = Vec::new();
    for i in 0..20 {
        let name = format!("stable{i:02}");
        components.push(package(&name, 5 * MB, 0.02));
        last.push(name);
    }
    let prior = PriorLayout { layers: vec![vec!["vol-a".into()], vec!["vol-b".into()], last] };
    let mut next = components.clone();
    next.push(package("new-volatile", 200 * KB, 0.5));
    let plan = plan_layers(&next, Some(&prior), &options(3));
    assert_valid(&plan, &next, 3);
    assert!(!layer_with(&plan, "new-volatile").components.contains(&"stable00".to_string()));
    assert_eq!(plan.layers.len(), 3);

    // Budget left: a new component gets a layer of its own, and nothing else moves.
    let plan = plan_layers(&next, Some(&prior), &options(10));
    assert_valid(&plan, &next, 10);
    assert_eq!(layer_with(&plan, "new-volatile").components, vec!["new-volatile".to_string()]);
    assert_eq!(&plan.to_prior().layers[..3], &prior.layers[..]);

    // Many new components with little room: spread by cost, not piled into the last layer.
    let base = corpus(300, 9);
    let fresh = plan_layers(&base, None, &options(63));
    let mut grown = base.clone();
    for i in 0..60 {
        grown.push(package(
            &format!("zz-new{i:02}"),
            50 * KB * (i % 7 + 1),
            if i % 3 == 0 { 0.4 } else { 0.02 },
        ));
    }
    let plan = plan_layers(&grown, Some(&fresh.to_prior()), &options(63));
    assert_valid(&plan, &grown, 63);
    let holders: BTreeSet<usize> = (0..60)
        .map(|i| {
            let name = format!("zz-new{i:02}");
            plan.layers.iter().position(|layer| layer.components.contains(&name)).unwrap_or(usize::MAX)
        })
        .collect();
    assert!(holders.len() > 1, "all new components in one layer");
}

#[test]
fn churn_is_bounded() {
    for (count, fraction) in [(200, 0.1), (400, 0.05), (400, 0.0), (1000, 0.1)] {
        let components = corpus(count, 11);
        let fresh = plan_layers(&components, None, &options(40));
        let prior = fresh.to_prior();
        // Everything stable becomes volatile and the other way round: many moves would pay.
        let flipped: Vec<Component> = components
            .iter()
            .map(|component| {
                let mut component = component.clone();
                if !component.kind.is_special() {
                    component.change_probability =
                        if component.change_probability > 0.05 { 0.02 } else { 0.6 };
                }
                component
            })
            .collect();
        let opts = PlanOptions { max_layers: 40, max_moved_fraction: fraction };
        let plan = plan_layers(&flipped, Some(&prior), &opts);
        assert_valid(&plan, &flipped, 40);
        let limit = (fraction * flipped.len() as f64).floor() as usize;
        assert!(moved(&prior, &plan) <= limit, "{count}: moved {} > {limit}", moved(&prior, &plan));
        if fraction == 0.0 {
            assert_eq!(plan.to_prior(), prior);
        }
    }
}

#[test]
fn corrupt_prior_falls_back_to_fresh_plan() {
    let components = corpus(60, 12);
    let fresh = plan_layers(&components, None, &options(8));
    let names: Vec<String> = components.iter().map(|component| component.name.clone()).collect();
    let cases: Vec<(&str, PriorLayout)> = vec![
        (
            "duplicate within a layer",
            PriorLayout { layers: vec![vec![names[0].clone(), names[0].clone()], names[1..].to_vec()] },
        ),
        ("duplicate across layers", PriorLayout { layers: vec![names[..10].to_vec(), names[5..].to_vec()] }),
        (
            "more layers than the budget",
            PriorLayout { layers: names.iter().map(|name| vec![name.clone()]).collect() },
        ),
        (
            "special component mixed with packages",
            PriorLayout {
                layers: vec![
                    vec![names[0].clone(), "arbor/rpmdb".to_string()],
                    names[1..10].to_vec(),
                    vec!["arbor/unpackaged".to_string()],
                ],
            },
        ),
    ];
    for (label, prior) in cases {
        let plan = plan_layers(&components, Some(&prior), &options(8));
        assert_valid(&plan, &components, 8);
        assert_eq!(plan.layers, fresh.layers, "{label}");
        assert_eq!(plan.warnings.len(), 1, "{label}: {:?}", plan.warnings);
        assert!(plan.warnings[0].starts_with("prior layout not used"), "{label}: {:?}", plan.warnings);
    }
}

#[test]
fn odd_inputs_do_not_panic() {
    let components = vec![
        package("nan", MB, f64::NAN),
        package("neg", MB, -3.0),
        package("inf", MB, f64::INFINITY),
        package("huge", u64::MAX, 0.5),
        package("", 0, 0.1),
        package("dup", MB, 0.5),
        package("dup", MB, 0.5),
        special("arbor/rpmdb", ComponentKind::Rpmdb, 0, f64::NAN),
    ];
    for max_layers in [0, 1, 2, 4, 127, usize::MAX] {
        for fraction in [f64::NAN, -1.0, 0.5, 7.0] {
            let opts = PlanOptions { max_layers, max_moved_fraction: fraction };
            let plan = plan_layers(&components, None, &opts);
            assert!(plan.warnings.iter().any(|warning| warning.contains("dup")));
            let names: BTreeSet<&str> = plan.layers.iter().flatten_names().collect();
            assert_eq!(names.len(), 7);
            let prior = PriorLayout { layers: vec![vec!["dup".into(), "neg".into()], vec!["nan".into()]] };
            let again = plan_layers(&components, Some(&prior), &opts);
            assert_eq!(again.layers.iter().flatten_names().count(), 7);
            assert!(again.layers.len() <= max_layers.max(1));
            assert!(expected_download(&again, &components).is_finite());
        }
    }
    let empty = plan_layers(&[], Some(&PriorLayout::default()), &options(0));
    assert!(empty.layers.is_empty());
    assert_eq!(expected_download(&empty, &[]), 0.0);
}

trait FlattenNames<'a> {
    fn flatten_names(self) -> impl Iterator<Item = &'a str>;
}

impl<'a, I: Iterator<Item = &'a PlannedLayer>> FlattenNames<'a> for I {
    fn flatten_names(self) -> impl Iterator<Item = &'a str> {
        self.flat_map(|layer| layer.components.iter().map(String::as_str))
    }
}

#[test]
fn sources_keep_binaries_together() {
    let mut components = Vec::new();
    let mut sources = Vec::new();
    for source in ["fwupd", "python3", "systemd", "xen"] {
        for binary in 0..4 {
            components.push(package(&format!("{source}-bin{binary}"), (binary + 1) * 300 * KB, 0.3));
            sources.push(source.to_string());
        }
    }
    for i in 0..20 {
        components.push(package(&format!("lib{i:02}"), 200 * KB, 0.05));
        sources.push(format!("lib{i:02}"));
    }
    let plan = plan_layers_with_sources(&components, &sources, None, &options(6));
    assert_valid(&plan, &components, 6);
    assert!(plan.warnings.is_empty());
    for source in ["fwupd", "python3", "systemd", "xen"] {
        let layer = layer_with(&plan, &format!("{source}-bin0"));
        for binary in 1..4 {
            assert!(layer.components.contains(&format!("{source}-bin{binary}")), "{source}: {layer:?}");
        }
    }
    let mismatched = plan_layers_with_sources(&components, &sources[1..], None, &options(6));
    assert_valid(&mismatched, &components, 6);
    assert_eq!(mismatched.warnings.len(), 1);
}

#[test]
fn two_thousand_components() {
    let components = corpus(2000, 77);
    let plan = plan_layers(&components, None, &options(126));
    assert_valid(&plan, &components, 126);
    assert_eq!(plan.layers.len(), 126);
    // Next build: 5% gone, 5% new, probabilities drift.
    let mut next: Vec<Component> = components.iter().filter(|c| !c.name.ends_with("00")).cloned().collect();
    let mut rng = Rng(5);
    for component in next.iter_mut().filter(|component| !component.kind.is_special()) {
        if rng.unit() < 0.1 {
            component.change_probability = rng.unit() * 0.6;
        }
    }
    next.extend((0..100).map(|i| package(&format!("new{i:03}"), 100 * KB * (i + 1), 0.05)));
    let prior = plan.to_prior();
    let again = plan_layers(&next, Some(&prior), &options(126));
    assert_valid(&again, &next, 126);
    assert!(moved(&prior, &again) <= next.len() / 10);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
}

#[test]
fn points_in_convex_position_stay_fast() {
    // Every unit on the lower-left hull of (P, s·q): the worst case of the hull search.
    let count = 2000;
    let components: Vec<Component> = (0..count)
        .map(|i| {
            let x = i as f64 / count as f64;
            let probability = 0.01 + 0.98 * x;
            let stays = 1e9 * (1.0 - x).powi(2) + 1.0;
            package(&format!("convex{i:04}"), (stays / (1.0 - probability)) as u64, probability)
        })
        .collect();
    let plan = plan_layers(&components, None, &options(126));
    assert_valid(&plan, &components, 126);
    assert_eq!(plan.layers.len(), 126);
}

#[test]
fn hull_search_matches_brute_force_greedy() {
    for seed in 0..20 {
        let mut rng = Rng(seed);
        let count = 30 + (rng.next() % 50) as usize;
        let components: Vec<Component> = (0..count)
            .map(|i| {
                let size = (KB as f64 * (1.0 / (0.01 + rng.unit())).powf(1.5)) as u64;
                package(&format!("p{i:03}"), size, 0.01 + 0.6 * rng.unit() * rng.unit())
            })
            .collect();
        let inputs = Inputs::new(&components, None::<&[&str]>);
        let groups: Vec<Group> =
            inputs.package_units().iter().map(|unit| Group::new(unit, &inputs, None)).collect();
        let target = 5 + (rng.next() % 15) as usize;
        let params = merge::MergeParams { horizon: 1.0, disjoint: true };
        let cost = |groups: &[Group]| groups.iter().map(Group::cost).sum::<f64>();
        let fast = merge::merge_disjoint(groups.clone(), target);
        let brute = merge::merge_to_budget(groups, target, &params);
        assert_eq!(fast.len(), target);
        assert!((cost(&fast) - cost(&brute)).abs() <= 1e-9 * cost(&brute), "seed {seed}");
        let items = |groups: &[Group]| {
            groups
                .iter()
                .map(|group| group.items.iter().copied().collect::<BTreeSet<_>>())
                .collect::<Vec<_>>()
        };
        assert_eq!(items(&fast), items(&brute), "seed {seed}");
    }
}
