//! Local search: move all items of one source from one layer to another (or to a new layer) while that
//! lowers the expected download by more than the one-time re-download it causes, within a budget of
//! moved components.

use std::collections::BTreeMap;

use super::MAX_IMPROVEMENT_PASSES;
use super::input::Inputs;

/// Gains below one byte per week are noise.
const MIN_GAIN_BYTES: f64 = 1.0;
/// ... and so are gains below this share of all bytes (floating-point rounding of large sums).
const RELATIVE_GAIN_TOLERANCE: f64 = 1e-9;
/// Below this, `1 − p` is treated as zero and products are recomputed instead of divided.
const STAY_EPSILON: f64 = 1e-12;

/// A layer under construction.
#[derive(Debug, Clone)]
pub(super) struct Layer {
    pub items: Vec<usize>,
    /// The prior layer it continues.
    pub origin: Option<usize>,
    /// Whether its membership changed in this build already (always true for new layers).
    pub dirty: bool,
    /// A special component's own layer: never a source or target of moves.
    pub special: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct ImproveParams {
    /// Weeks over which weekly savings count against one-time re-downloads.
    pub horizon: f64,
    /// Whether changing a non-dirty layer costs a re-download (false for fresh plans).
    pub churn: bool,
    /// Package (non-special) layers allowed.
    pub package_budget: usize,
    /// Components allowed away from their prior layer (None: unlimited).
    pub moved_budget: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SourceStats {
    /// Highest change probability of the source's items in the layer.
    pub probability: f64,
    pub size: f64,
}

/// Size and change statistics of a layer.
#[derive(Debug, Clone, Default)]
pub(super) struct LayerStats {
    pub size: f64,
    pub stay: f64,
    pub sources: BTreeMap<usize, SourceStats>,
}

impl LayerStats {
    pub fn new(items: &[usize], inputs: &Inputs) -> LayerStats {
        let mut sources: BTreeMap<usize, SourceStats> = BTreeMap::new();
        let mut size = 0.0;
        for &item in items {
            let item = &inputs.items[item];
            size += item.size;
            let stats = sources.entry(item.source).or_default();
            stats.probability = stats.probability.max(item.probability);
            stats.size += item.size;
        }
        let stay = sources.values().map(|stats| 1.0 - stats.probability).product();
        LayerStats { size, stay, sources }
    }

    pub fn cost(&self) -> f64 {
        (1.0 - self.stay) * self.size
    }

    /// Stay probability without `source`.
    fn stay_without(&self, source: usize) -> f64 {
        match self.sources.get(&source) {
            None => self.stay,
            Some(stats) if 1.0 - stats.probability > STAY_EPSILON => self.stay / (1.0 - stats.probability),
            Some(_) => self
                .sources
                .iter()
                .filter(|(other, _)| **other != source)
                .map(|(_, stats)| 1.0 - stats.probability)
                .product(),
        }
    }

    /// Stay probability with items of `source` (highest probability `probability`) added.
    fn stay_with(&self, source: usize, probability: f64) -> f64 {
        match self.sources.get(&source) {
            None => self.stay * (1.0 - probability),
            Some(stats) if stats.probability >= probability => self.stay,
            Some(_) => self.stay_without(source) * (1.0 - probability),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Existing(usize),
    New,
}

#[derive(Debug, Clone, Copy)]
struct Move {
    gain: f64,
    from: usize,
    source: usize,
    target: Target,
}

struct Search<'a> {
    layers: &'a mut Vec<Layer>,
    stats: Vec<LayerStats>,
    inputs: &'a Inputs,
    item_origin: &'a [Option<usize>],
    params: ImproveParams,
    moved: usize,
}

/// The part of a move's gain that depends only on the layer it leaves.
#[derive(Debug, Clone, Copy)]
struct Leaving {
    source: usize,
    group: SourceStats,
    /// Weekly cost of the layer before and after the move.
    before: f64,
    after: f64,
    churn: f64,
}

impl Search<'_> {
    fn leaving(&self, from: usize, source: usize) -> Option<Leaving> {
        let stats = &self.stats[from];
        let group = *stats.sources.get(&source)?;
        if stats.sources.len() < 2 {
            return None;
        }
        let size = stats.size - group.size;
        let after = (1.0 - stats.stay_without(source)) * size;
        let churn = if self.params.churn && !self.layers[from].dirty { stats.stay * size } else { 0.0 };
        Some(Leaving { source, group, before: stats.cost(), after, churn })
    }

    /// Net gain (amortized bytes) of the move.
    fn gain_with(&self, leaving: &Leaving, target: Target) -> f64 {
        let group = leaving.group;
        let (before, after, churn) = match target {
            Target::New => (0.0, group.probability * group.size, 0.0),
            Target::Existing(to) => {
                let stats = &self.stats[to];
                let size = stats.size + group.size;
                let churn = if self.params.churn && !self.layers[to].dirty { stats.stay * size } else { 0.0 };
                (stats.cost(), (1.0 - stats.stay_with(leaving.source, group.probability)) * size, churn)
            }
        };
        let weekly = leaving.after + after - leaving.before - before;
        -self.params.horizon * weekly - leaving.churn - churn
    }

    fn gain(&self, from: usize, source: usize, target: Target) -> Option<f64> {
        self.leaving(from, source).map(|leaving| self.gain_with(&leaving, target))
    }

    fn package_layers(&self) -> usize {
        self.layers.iter().filter(|layer| !layer.special && !layer.items.is_empty()).count()
    }

    fn origin_of(&self, item: usize) -> Option<usize> {
        self.item_origin.get(item).copied().flatten()
    }

    /// Change in the number of moved components if `source` leaves layer `from` for `target`.
    fn moved_delta(&self, from: usize, source: usize, target: Target) -> isize {
        let from_origin = self.layers[from].origin;
        let to_origin = match target {
            Target::Existing(to) => self.layers[to].origin,
            Target::New => None,
        };
        let mut delta = 0;
        for &item in &self.layers[from].items {
            if self.inputs.items[item].source != source {
                continue;
            }
            if let Some(origin) = self.origin_of(item) {
                delta += isize::from(to_origin != Some(origin)) - isize::from(from_origin != Some(origin));
            }
        }
        delta
    }

    /// The best paying move of every source group. Only pairs involving a layer in `changed` are
    /// looked at: the others were found not to pay in the previous pass.
    fn best_moves(&self, threshold: f64, changed: &[bool]) -> Vec<Move> {
        let can_open = self.package_layers() < self.params.package_budget;
        let targets: Vec<usize> = (0..self.layers.len())
            .filter(|&to| !self.layers[to].special && !self.layers[to].items.is_empty())
            .collect();
        let mut moves = Vec::new();
        for from in 0..self.layers.len() {
            if self.layers[from].special || self.stats[from].sources.len() < 2 {
                continue;
            }
            let every_target = changed.get(from).copied().unwrap_or(true);
            for &source in self.stats[from].sources.keys() {
                let Some(leaving) = self.leaving(from, source) else { continue };
                let mut best: Option<Move> = None;
                let mut consider = |target: Target, gain: f64| {
                    if gain > threshold && best.is_none_or(|best| gain > best.gain) {
                        best = Some(Move { gain, from, source, target });
                    }
                };
                for &to in &targets {
                    if to != from && (every_target || changed.get(to).copied().unwrap_or(true)) {
                        consider(Target::Existing(to), self.gain_with(&leaving, Target::Existing(to)));
                    }
                }
                if can_open && every_target {
                    consider(Target::New, self.gain_with(&leaving, Target::New));
                }
                moves.extend(best);
            }
        }
        moves.sort_by(|a, b| {
            b.gain
                .total_cmp(&a.gain)
                .then(a.from.cmp(&b.from))
                .then(a.source.cmp(&b.source))
                .then(a.target.cmp(&b.target))
        });
        moves
    }

    /// Applies `candidate` if it still pays and fits the budgets; returns the layer moved to.
    fn try_apply(&mut self, candidate: Move, threshold: f64) -> Option<usize> {
        if candidate.target == Target::New && self.package_layers() >= self.params.package_budget {
            return None;
        }
        match self.gain(candidate.from, candidate.source, candidate.target) {
            Some(gain) if gain > threshold => {}
            _ => return None,
        }
        let delta = self.moved_delta(candidate.from, candidate.source, candidate.target);
        let moved = self.moved.saturating_add_signed(delta);
        if self.params.moved_budget.is_some_and(|budget| moved > budget) && delta > 0 {
            return None;
        }
        let inputs = self.inputs;
        let source = candidate.source;
        let (leaving, staying): (Vec<usize>, Vec<usize>) =
            self.layers[candidate.from].items.iter().partition(|&&item| inputs.items[item].source == source);
        self.layers[candidate.from].items = staying;
        self.layers[candidate.from].dirty = true;
        self.stats[candidate.from] = LayerStats::new(&self.layers[candidate.from].items, inputs);
        let to = match candidate.target {
            Target::Existing(to) => to,
            Target::New => {
                self.layers.push(Layer { items: Vec::new(), origin: None, dirty: true, special: false });
                self.stats.push(LayerStats::default());
                self.layers.len() - 1
            }
        };
        self.layers[to].items.extend(leaving);
        self.layers[to].dirty = true;
        self.stats[to] = LayerStats::new(&self.layers[to].items, inputs);
        self.moved = moved;
        Some(to)
    }
}

/// Improves `layers` in place with single-source moves (see the module documentation). `item_origin`
/// gives each item's prior layer (empty for a fresh plan). New layers are appended.
pub(super) fn improve(
    layers: &mut Vec<Layer>,
    inputs: &Inputs,
    item_origin: &[Option<usize>],
    params: &ImproveParams,
) {
    let threshold = params.horizon * MIN_GAIN_BYTES.max(RELATIVE_GAIN_TOLERANCE * inputs.total_size);
    let stats = layers.iter().map(|layer| LayerStats::new(&layer.items, inputs)).collect();
    let mut moved = 0;
    for layer in layers.iter() {
        for &item in &layer.items {
            if let Some(origin) = item_origin.get(item).copied().flatten() {
                moved += usize::from(layer.origin != Some(origin));
            }
        }
    }
    let mut search = Search { layers, stats, inputs, item_origin, params: *params, moved };
    let mut changed: Vec<bool> = Vec::new();
    for _ in 0..MAX_IMPROVEMENT_PASSES {
        let candidates = search.best_moves(threshold, &changed);
        changed = vec![false; search.layers.len()];
        let mut applied = false;
        for candidate in candidates {
            // A candidate that no longer applies may hide another paying target of its group: look at
            // the whole layer again next pass.
            changed[candidate.from] = true;
            if let Some(to) = search.try_apply(candidate, threshold) {
                changed.resize(search.layers.len(), true);
                changed[to] = true;
                applied = true;
            }
        }
        if !applied {
            break;
        }
    }
}
