//! Chunk planning: which components (packages, unpackaged content, rpmdb, kernel) share a layer.
//!
//! Pure computation, no I/O. An ostree commit becomes an OCI image whose layer 0 is the commit layer and
//! whose other layers ("chunks") each hold the file objects of a set of components. Clients cache layers
//! by digest and download a layer again whenever any of its components changed or its membership did.
//! The planner minimizes the expected bytes a client downloads per (weekly) update while keeping the
//! layout stable across builds.
//!
//! # Cost model
//!
//! Every component has a size `s` (estimated compressed bytes) and a probability `p` of changing in one
//! weekly update ([`change_probability`] estimates it from changelog dates). A layer holding components
//! `i` changes with probability `P = 1 − Π(1 − p_i)` and costs `P · Σ s_i` expected bytes per update;
//! [`expected_download`] sums that over a plan. Merging two groups `A` and `B` raises the expected cost by
//! `s_A·q_A·(1 − q_B) + s_B·q_B·(1 − q_A)` (with `q = 1 − P`): the bytes of one group that are dragged
//! along when only the other one changes. Big or volatile components therefore stay alone; small stable
//! ones are cheap to group, and a volatile component never pollutes a big stable group.
//!
//! [`plan_layers_with_sources`] also takes the source package (SRPM) of every component. Binary
//! packages built from one source update together, so a layer pays for a source once:
//! `P = 1 − Π_sources (1 − max p of the source's members in the layer)`. Sharing a layer is free for
//! them, and the planner keeps the binaries of one source together.
//!
//! # Special components
//!
//! Components of kind [`ComponentKind::Unpackaged`], [`ComponentKind::Rpmdb`] and
//! [`ComponentKind::Kernel`] always get a layer of their own (the rpm database changes with every
//! update and must not drag anything along). Only when `max_layers` is too small for that are the
//! excess special components planned like packages, with a warning.
//!
//! # Fresh plan (no prior layout)
//!
//! 1. Packages are grouped into units (one unit per source package; one per package without sources).
//! 2. Greedy agglomeration: every unit starts as its own group; the pair of groups whose merge raises
//!    the expected cost least is merged until the groups fit the layer budget. The cheapest pair is
//!    found among the points of two convex-hull layers (see `merge.rs`), so one merge costs O(n) and
//!    the whole agglomeration about O(n²).
//! 3. Local search: moving a unit to another layer when that lowers the expected cost, until no move
//!    helps (at most [`MAX_IMPROVEMENT_PASSES`] passes). The result is a local optimum for single moves,
//!    which is what keeps a rebuild with unchanged inputs from moving anything (see below).
//! 4. Layers are ordered most stable first (change probability, then size, then name).
//!
//! # Plan with a prior layout
//!
//! The previous image's layers (from its `ostree.components` annotations) are the starting point:
//!
//! 1. The prior is validated. Duplicate names, a special component sharing a layer with others, or more
//!    package layers (that still hold a current component) than the budget make it unusable: the
//!    planner falls back to a fresh plan and says why in [`ChunkPlan::warnings`]. Empty names
//!    (rpm-ostree's "reserved for new packages" layer) are ignored.
//! 2. Components that disappeared are dropped; every other component stays in its layer.
//! 3. New components are placed by cost with the same agglomeration: they may merge with each other
//!    (a new layer, downloaded anyway) or join an existing layer, which costs the expected weekly increase
//!    over an amortization horizon ([`CHURN_AMORTIZATION_WEEKS`]) plus the one-time re-download of that
//!    layer's old content when its membership had not changed yet. They get new layers while the budget
//!    allows; nothing is blindly appended to the last layer. (Many new units are first agglomerated
//!    among themselves down to the budget, so the joint step handles at most twice the budget.)
//! 4. Bounded re-optimization: the local search of the fresh plan, where a move must pay for the layers
//!    it changes within the horizon. At most `max_moved_fraction` of the components (counted by number
//!    of components, over all current components) may leave their previous layer per build; the most
//!    valuable moves go first.
//! 5. Layers keep their previous order; new layers follow, most stable first.
//!
//! A rebuild with the same components and probabilities as the one that produced the prior keeps the
//! plan identical: there is nothing new to place, and every move costs a re-download that the (already
//! locally optimal) layout cannot earn back.
//!
//! Everything is deterministic: components are processed in name order, maps are ordered, and ties are
//! broken by index (hence by name).

mod improve;
mod input;
mod merge;
mod prior;
#[cfg(test)]
mod tests;

use input::Inputs;
use merge::Group;

/// Chunk layers allowed by default: ostree-ext's 64 layers minus the commit layer.
pub const DEFAULT_MAX_LAYERS: usize = 63;
/// Share of the components that may leave their previous layer in one build by default.
pub const DEFAULT_MAX_MOVED_FRACTION: f64 = 0.1;
/// Changelog entries older than this (before the reference time) say nothing about the next update.
pub const CHANGE_WINDOW_SECONDS: i64 = 365 * DAY_SECONDS;
/// One update period: probabilities are per weekly update.
pub const WEEK_SECONDS: i64 = 7 * DAY_SECONDS;
/// A package without a change in the window still gets the occasional security fix or rebuild:
/// about one update per year, 1/52 ≈ 0.02 per week.
pub const MIN_CHANGE_PROBABILITY: f64 = 0.02;
/// A layer move costs a one-time re-download and saves expected bytes every week after; it has to pay
/// for itself within a quarter, since probabilities are only estimates and layouts should stay put.
pub const CHURN_AMORTIZATION_WEEKS: f64 = 13.0;
/// Cap on local-search passes (each pass applies every improving move it finds).
pub const MAX_IMPROVEMENT_PASSES: usize = 32;

const DAY_SECONDS: i64 = 24 * 60 * 60;

/// What a component is; everything but [`ComponentKind::Package`] always gets a layer of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentKind {
    /// An rpm package (or, without an rpm database, a directory).
    Package,
    /// Files no package owns (generated configuration, ...).
    Unpackaged,
    /// The rpm database.
    Rpmdb,
    /// Kernel and initramfs.
    Kernel,
}

impl ComponentKind {
    /// Whether components of this kind are always alone in their layer.
    pub fn is_special(self) -> bool {
        self != ComponentKind::Package
    }
}

/// One unit of content that ends up in exactly one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Package name, or a fixed name for the special kinds.
    pub name: String,
    pub kind: ComponentKind,
    /// Estimated compressed bytes of its objects.
    pub size: u64,
    /// Chance it changes in one weekly update, 0..=1 (out-of-range values are clamped, NaN counts as 1).
    pub change_probability: f64,
}

/// The component names of each chunk layer of the previous image, in layer order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriorLayout {
    pub layers: Vec<Vec<String>>,
}

/// One chunk layer of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLayer {
    /// Sorted component names.
    pub components: Vec<String>,
    /// "bash", "bash and zsh", "12 components" (the layer's history entry).
    pub description: String,
}

/// The chunk layers of an image (the commit layer is not part of it), in layer order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkPlan {
    pub layers: Vec<PlannedLayer>,
    /// Why the prior layout was not used, inputs that were repaired, budgets that could not be kept.
    pub warnings: Vec<String>,
}

impl ChunkPlan {
    /// The layout of this plan as the prior of the next build.
    pub fn to_prior(&self) -> PriorLayout {
        PriorLayout { layers: self.layers.iter().map(|layer| layer.components.clone()).collect() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    /// Chunk layers allowed, excluding the commit layer.
    pub max_layers: usize,
    /// Share of the components (by count) that may leave their previous layer per build.
    pub max_moved_fraction: f64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions { max_layers: DEFAULT_MAX_LAYERS, max_moved_fraction: DEFAULT_MAX_MOVED_FRACTION }
    }
}

/// Plans the chunk layers; every component is treated as changing independently of the others.
pub fn plan_layers(
    components: &[Component],
    prior: Option<&PriorLayout>,
    options: &PlanOptions,
) -> ChunkPlan {
    plan(Inputs::new(components, None::<&[&str]>), prior, options)
}

/// Like [`plan_layers`], with `sources[i]` the source package (SRPM name) of `components[i]`: components
/// of one source are assumed to change together. An empty source means "unknown" (the component is its
/// own source). If the lengths differ, sources are ignored (with a warning).
pub fn plan_layers_with_sources<S: AsRef<str>>(
    components: &[Component],
    sources: &[S],
    prior: Option<&PriorLayout>,
    options: &PlanOptions,
) -> ChunkPlan {
    plan(Inputs::new(components, Some(sources)), prior, options)
}

fn plan(mut inputs: Inputs, prior: Option<&PriorLayout>, options: &PlanOptions) -> ChunkPlan {
    if inputs.items.is_empty() {
        return ChunkPlan { layers: Vec::new(), warnings: inputs.warnings };
    }
    let max_layers = if options.max_layers == 0 {
        inputs.warnings.push("max_layers is 0: planning one layer".to_string());
        1
    } else {
        options.max_layers
    };
    inputs.choose_alone(max_layers);
    let package_budget = max_layers - inputs.alone.len();
    let layers = match prior {
        Some(prior) => {
            match prior::plan_with_prior(&inputs, prior, package_budget, options.max_moved_fraction) {
                Ok(layers) => layers,
                Err(reason) => {
                    inputs.warnings.push(format!("prior layout not used, planning afresh: {reason}"));
                    fresh(&inputs, package_budget)
                }
            }
        }
        None => fresh(&inputs, package_budget),
    };
    let layers = layers
        .into_iter()
        .filter(|items| !items.is_empty())
        .map(|items| {
            let mut components: Vec<String> =
                items.iter().map(|&item| inputs.items[item].name.clone()).collect();
            components.sort();
            let description = describe(&components);
            PlannedLayer { components, description }
        })
        .collect();
    ChunkPlan { layers, warnings: inputs.warnings }
}

/// A fresh plan as item lists, most stable layer first.
fn fresh(inputs: &Inputs, package_budget: usize) -> Vec<Vec<usize>> {
    let groups: Vec<Group> =
        inputs.package_units().iter().map(|unit| Group::new(unit, inputs, None)).collect();
    let merged = merge::merge_disjoint(groups, package_budget);
    let mut layers: Vec<improve::Layer> = merged
        .into_iter()
        .map(|group| improve::Layer { items: group.items, origin: None, dirty: true, special: false })
        .collect();
    improve::improve(
        &mut layers,
        inputs,
        &[],
        &improve::ImproveParams { horizon: 1.0, churn: false, package_budget, moved_budget: None },
    );
    let mut all: Vec<Vec<usize>> = layers.into_iter().map(|layer| layer.items).collect();
    all.extend(inputs.alone.iter().map(|&item| vec![item]));
    sort_most_stable_first(&mut all, inputs);
    all
}

/// Orders layers by change probability, then size (largest first), then first component name.
fn sort_most_stable_first(layers: &mut [Vec<usize>], inputs: &Inputs) {
    let mut keyed: Vec<(f64, f64, String, Vec<usize>)> = layers
        .iter_mut()
        .map(|items| {
            let stats = improve::LayerStats::new(items, inputs);
            let first = items.iter().map(|&item| inputs.items[item].name.as_str()).min().unwrap_or_default();
            (1.0 - stats.stay, stats.size, first.to_string(), std::mem::take(items))
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)).then_with(|| a.2.cmp(&b.2)));
    for (slot, (_, _, _, items)) in layers.iter_mut().zip(keyed) {
        *slot = items;
    }
}

/// "bash", "bash and zsh", "3 components" for sorted component names.
pub fn describe(components: &[String]) -> String {
    match components {
        [] => "no components".to_string(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        more => format!("{} components", more.len()),
    }
}

/// Chance of a change in one weekly update, from the dates (unix seconds) of a package's changelog
/// entries and the reference time (the newest build time in the image).
///
/// Counts the distinct weeks with an entry within [`CHANGE_WINDOW_SECONDS`] before the reference (an
/// entry dated after the reference counts for the current week), turns that into a weekly rate
/// `λ = weeks / 52.14`, and returns `1 − exp(−λ)` (a Poisson process), at least
/// [`MIN_CHANGE_PROBABILITY`].
pub fn change_probability(changelog_times: &[i64], reference_time: i64) -> f64 {
    let mut weeks = std::collections::BTreeSet::new();
    for &time in changelog_times {
        let age = reference_time.saturating_sub(time).max(0);
        if age < CHANGE_WINDOW_SECONDS {
            weeks.insert(age / WEEK_SECONDS);
        }
    }
    let window_weeks = CHANGE_WINDOW_SECONDS as f64 / WEEK_SECONDS as f64;
    let rate = weeks.len() as f64 / window_weeks;
    (1.0 - (-rate).exp()).max(MIN_CHANGE_PROBABILITY)
}

/// Expected bytes downloaded per update: Σ over layers of `(1 − Π(1 − p_i)) · Σ size_i`.
///
/// Components are looked up by name (names the plan has but `components` lacks count as nothing);
/// components are treated as independent, whatever sources the plan was made with.
pub fn expected_download(plan: &ChunkPlan, components: &[Component]) -> f64 {
    let inputs = Inputs::new(components, None::<&[&str]>);
    plan.layers
        .iter()
        .map(|layer| {
            let items: Vec<usize> = layer.components.iter().filter_map(|name| inputs.find(name)).collect();
            improve::LayerStats::new(&items, &inputs).cost()
        })
        .sum()
}
