//! Greedy agglomeration: merge the pair of groups whose merge costs least until the groups fit the
//! layer budget. The cost of a merge is the rise in expected weekly download over a horizon, plus the
//! one-time re-download of a prior layer whose membership it changes.
//!
//! Groups without shared sources ([`merge_disjoint`]) use geometry: with u = P (change probability)
//! and v = s·q (bytes that stay), merging `a` and `b` costs `v_a·u_b + v_b·u_a`, a linear function of
//! the partner's point with non-negative weights. The cheapest partner of any group is therefore a
//! vertex of the lower-left convex hull of the other points, which lies on the first or second hull
//! layer of all points; so the cheapest pair overall lies within those two layers (a few dozen points).
//! One merge costs O(n) for the hulls plus O(h²) for the pairs, about O(n²) in all.

use std::collections::BTreeMap;

use super::input::Inputs;

/// A set of items that will share a layer.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub items: Vec<usize>,
    pub size: f64,
    /// Highest change probability per source among the items.
    pub sources: BTreeMap<usize, f64>,
    /// Probability that no item changes: Π over sources of (1 − p).
    pub stay: f64,
    /// The prior layer this group continues (an index chosen by the caller). Two such groups never
    /// merge.
    pub origin: Option<usize>,
    /// Whether the membership of the prior layer has changed already in this build.
    pub dirty: bool,
}

/// How merges are priced.
#[derive(Debug, Clone, Copy)]
pub(super) struct MergeParams {
    /// Weeks over which a rise in expected weekly cost is counted (against one-time re-downloads).
    pub horizon: f64,
    /// Whether no two groups share a source (then merged stay probabilities are plain products).
    pub disjoint: bool,
}

impl Group {
    pub fn new(items: &[usize], inputs: &Inputs, origin: Option<usize>) -> Group {
        let mut sources: BTreeMap<usize, f64> = BTreeMap::new();
        let mut size = 0.0;
        for &item in items {
            let item = &inputs.items[item];
            size += item.size;
            let probability = sources.entry(item.source).or_insert(0.0);
            *probability = probability.max(item.probability);
        }
        let stay = stay_of(&sources);
        Group { items: items.to_vec(), size, sources, stay, origin, dirty: false }
    }

    /// Expected bytes downloaded per update.
    pub fn cost(&self) -> f64 {
        (1.0 - self.stay) * self.size
    }

    /// One-time cost of changing this group's membership: the clients that would not have downloaded
    /// the prior layer this week download its old content again (new content is downloaded anyway).
    fn churn(&self) -> f64 {
        if self.origin.is_some() && !self.dirty { self.stay * self.size } else { 0.0 }
    }

    /// The group as a point (u, v) = (P, s·q): merging costs `v_a·u_b + v_b·u_a` per week.
    fn point(&self) -> (f64, f64) {
        (1.0 - self.stay, self.size * self.stay)
    }
}

pub(super) fn stay_of(sources: &BTreeMap<usize, f64>) -> f64 {
    sources.values().map(|probability| 1.0 - probability).product()
}

/// Stay probability of the union of `a` and `b`.
fn merged_stay(a: &Group, b: &Group, disjoint: bool) -> f64 {
    if disjoint {
        return a.stay * b.stay;
    }
    let (small, big) = if a.sources.len() <= b.sources.len() { (a, b) } else { (b, a) };
    let mut stay = big.stay;
    let mut raised = false;
    for (source, &probability) in &small.sources {
        match big.sources.get(source) {
            None => stay *= 1.0 - probability,
            Some(&existing) => raised |= probability > existing,
        }
    }
    if !raised {
        return stay;
    }
    // A shared source is more volatile in `small`: recompute exactly rather than divide by 1 − p.
    let big_part: f64 = big
        .sources
        .iter()
        .map(|(source, &probability)| {
            1.0 - small.sources.get(source).map_or(probability, |&other| other.max(probability))
        })
        .product();
    let small_part: f64 = small
        .sources
        .iter()
        .filter(|(source, _)| !big.sources.contains_key(source))
        .map(|(_, &probability)| 1.0 - probability)
        .product();
    big_part * small_part
}

/// Price of merging `a` and `b` (infinite for two prior layers).
fn pair_cost(a: &Group, b: &Group, params: &MergeParams) -> f64 {
    if a.origin.is_some() && b.origin.is_some() {
        return f64::INFINITY;
    }
    let size = a.size + b.size;
    let weekly = if params.disjoint {
        // Bytes of one group dragged along when only the other changes.
        a.size * a.stay * (1.0 - b.stay) + b.size * b.stay * (1.0 - a.stay)
    } else {
        ((1.0 - merged_stay(a, b, false)) * size - a.cost() - b.cost()).max(0.0)
    };
    params.horizon * weekly + a.churn() + b.churn()
}

pub(super) fn merge(a: Group, b: Group) -> Group {
    let mut items = a.items;
    items.extend(b.items);
    let mut sources = a.sources;
    for (source, probability) in b.sources {
        let entry = sources.entry(source).or_insert(0.0);
        *entry = entry.max(probability);
    }
    let stay = stay_of(&sources);
    let origin = a.origin.or(b.origin);
    Group {
        items,
        size: a.size + b.size,
        sources,
        stay,
        origin,
        dirty: a.dirty || b.dirty || origin.is_some(),
    }
}

/// (cost, partner) ordered by cost, then partner index.
fn better(candidate: (f64, usize), current: (f64, usize)) -> bool {
    candidate.0.total_cmp(&current.0).then(candidate.1.cmp(&current.1)).is_lt()
}

const NONE: (f64, usize) = (f64::INFINITY, usize::MAX);

fn best_partner(slots: &[Option<Group>], i: usize, params: &MergeParams) -> (f64, usize) {
    let Some(group) = &slots[i] else { return NONE };
    let mut best = NONE;
    for (j, other) in slots.iter().enumerate() {
        if let Some(other) = other
            && j != i
        {
            let candidate = (pair_cost(group, other, params), j);
            if better(candidate, best) {
                best = candidate;
            }
        }
    }
    best
}

/// Merges groups until at most `target` (≥ 1) remain, cheapest merge first; ties go to the lowest
/// indices. The survivor of a merge keeps the lower index, so the result is in input order of the
/// groups' first members. Stops early if only infinitely expensive merges are left.
pub(super) fn merge_to_budget(groups: Vec<Group>, target: usize, params: &MergeParams) -> Vec<Group> {
    let target = target.max(1);
    let mut slots: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
    let mut alive = slots.len();
    if alive <= target {
        return slots.into_iter().flatten().collect();
    }
    let mut best: Vec<(f64, usize)> = (0..slots.len()).map(|i| best_partner(&slots, i, params)).collect();
    while alive > target {
        let mut pick: Option<(f64, usize, usize)> = None;
        for (i, slot) in slots.iter().enumerate() {
            if slot.is_some() && pick.is_none_or(|(cost, _, _)| best[i].0.total_cmp(&cost).is_lt()) {
                pick = Some((best[i].0, i, best[i].1));
            }
        }
        let Some((cost, i, j)) = pick else { break };
        if !cost.is_finite() || j >= slots.len() {
            break;
        }
        let (low, high) = (i.min(j), i.max(j));
        let (Some(a), Some(b)) = (slots[low].take(), slots[high].take()) else { break };
        slots[low] = Some(merge(a, b));
        alive -= 1;
        best[high] = NONE;
        best[low] = best_partner(&slots, low, params);
        for k in 0..slots.len() {
            if k == low || slots[k].is_none() {
                continue;
            }
            if best[k].1 == low || best[k].1 == high {
                best[k] = best_partner(&slots, k, params);
            } else if let (Some(group), Some(merged)) = (&slots[k], &slots[low]) {
                let candidate = (pair_cost(group, merged, params), low);
                if better(candidate, best[k]) {
                    best[k] = candidate;
                }
            }
        }
    }
    slots.into_iter().flatten().collect()
}

/// Above this many hull candidates, pairs are only looked for among neighbors.
const MAX_HULL_CANDIDATES: usize = 128;
/// Neighbors (in u order) paired with each candidate on huge hulls.
const HULL_NEIGHBOR_WINDOW: usize = 16;

/// Andrew's lower hull of `points` (sorted by u, then v), cut after its lowest point: the vertices that
/// minimize some non-negative combination of u and v.
fn lower_left_hull(sorted: impl Iterator<Item = usize>, points: &[(f64, f64)]) -> Vec<usize> {
    let cross =
        |o: (f64, f64), a: (f64, f64), b: (f64, f64)| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let mut hull: Vec<usize> = Vec::new();
    for index in sorted {
        while let [.., o, a] = hull[..]
            && cross(points[o], points[a], points[index]) <= 0.0
        {
            hull.pop();
        }
        hull.push(index);
    }
    let lowest = hull
        .iter()
        .enumerate()
        .min_by(|&(_, &a), &(_, &b)| points[a].1.total_cmp(&points[b].1))
        .map_or(0, |(position, _)| position);
    hull.truncate(lowest + 1);
    hull
}

/// Exact greedy agglomeration of groups whose sources are pairwise disjoint, down to `target` (≥ 1)
/// groups, without churn (see the module documentation). The survivor of a merge keeps the lower
/// index; the result is in input order.
pub(super) fn merge_disjoint(groups: Vec<Group>, target: usize) -> Vec<Group> {
    let target = target.max(1);
    let mut slots: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
    let mut points: Vec<(f64, f64)> = slots.iter().flatten().map(Group::point).collect();
    let key = |points: &[(f64, f64)], a: usize, b: usize| {
        points[a].0.total_cmp(&points[b].0).then(points[a].1.total_cmp(&points[b].1)).then(a.cmp(&b))
    };
    let mut order: Vec<usize> = (0..slots.len()).collect();
    order.sort_by(|&a, &b| key(&points, a, b));
    let mut on_first = vec![false; slots.len()];
    while order.len() > target {
        let first = lower_left_hull(order.iter().copied(), &points);
        for &index in &first {
            on_first[index] = true;
        }
        let second = lower_left_hull(order.iter().copied().filter(|&index| !on_first[index]), &points);
        for &index in &first {
            on_first[index] = false;
        }
        let mut candidates: Vec<usize> = first.into_iter().chain(second).collect();
        // Pairs among the candidates; for huge hulls (points in convex position, not seen in real
        // inputs) only pairs of nearby points in u order, which keeps a merge O(n).
        let window = if candidates.len() > MAX_HULL_CANDIDATES { HULL_NEIGHBOR_WINDOW } else { usize::MAX };
        candidates.sort_by(|&a, &b| key(&points, a, b));
        candidates.dedup();
        let mut best: Option<(f64, usize, usize)> = None;
        for (position, &a) in candidates.iter().enumerate() {
            for &b in candidates.iter().skip(position + 1).take(window) {
                let ((ua, va), (ub, vb)) = (points[a], points[b]);
                let cost = va * ub + vb * ua;
                let (a, b) = (a.min(b), a.max(b));
                if best.is_none_or(|(best_cost, best_a, best_b)| {
                    cost.total_cmp(&best_cost).then(a.cmp(&best_a)).then(b.cmp(&best_b)).is_lt()
                }) {
                    best = Some((cost, a, b));
                }
            }
        }
        let Some((_, low, high)) = best else { break };
        let (Some(a), Some(b)) = (slots[low].take(), slots[high].take()) else { break };
        let merged = merge(a, b);
        points[low] = merged.point();
        slots[low] = Some(merged);
        order.retain(|&index| index != low && index != high);
        let position = order.partition_point(|&index| key(&points, index, low).is_lt());
        order.insert(position, low);
    }
    slots.into_iter().flatten().collect()
}
