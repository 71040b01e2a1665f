//! Planning from the previous image's layout: keep what is there, place new components by cost, and make
//! a bounded number of moves that pay for themselves.

use std::collections::BTreeSet;

use super::improve::{self, ImproveParams, Layer};
use super::input::{Inputs, clamp_probability};
use super::merge::{self, Group, MergeParams};
use super::{CHURN_AMORTIZATION_WEEKS, PriorLayout, sort_most_stable_first};

/// The layers (item lists, in order) planned from `prior`, or why the prior cannot be used.
pub(super) fn plan_with_prior(
    inputs: &Inputs,
    prior: &PriorLayout,
    package_budget: usize,
    max_moved_fraction: f64,
) -> Result<Vec<Vec<usize>>, String> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut layers: Vec<Layer> = Vec::new();
    let mut item_origin: Vec<Option<usize>> = vec![None; inputs.items.len()];
    for (index, names) in prior.layers.iter().enumerate() {
        let names: Vec<&str> = names.iter().map(String::as_str).filter(|name| !name.is_empty()).collect();
        for name in &names {
            if !seen.insert(name) {
                return Err(format!("component {name} appears more than once"));
            }
        }
        let items: Vec<usize> = names.iter().filter_map(|name| inputs.find(name)).collect();
        if names.len() > 1
            && let Some(&special) = items.iter().find(|&&item| inputs.is_alone(item))
        {
            return Err(format!(
                "{} shares layer {} with other components",
                inputs.items[special].name,
                index + 1
            ));
        }
        if items.is_empty() {
            continue;
        }
        for &item in &items {
            item_origin[item] = Some(index);
        }
        let special = items.len() == 1 && inputs.is_alone(items[0]);
        layers.push(Layer { dirty: items.len() < names.len(), items, origin: Some(index), special });
    }
    let kept = layers.iter().filter(|layer| !layer.special).count();
    if kept > package_budget {
        return Err(format!("it has {kept} package layers, more than the {package_budget} allowed"));
    }

    // Place the new components: new units merge with each other or join kept layers, by cost.
    let placed: Vec<bool> = item_origin.iter().map(Option::is_some).collect();
    let new_special: Vec<usize> =
        inputs.alone.iter().copied().filter(|&item| !placed.get(item).copied().unwrap_or(false)).collect();
    let new_units =
        inputs.units_of((0..inputs.items.len()).filter(|&item| !placed[item] && !inputs.is_alone(item)));
    let mut groups: Vec<Group> = Vec::new();
    for (position, layer) in layers.iter().enumerate() {
        if !layer.special {
            let mut group = Group::new(&layer.items, inputs, Some(position));
            group.dirty = layer.dirty;
            groups.push(group);
        }
    }
    // New units are disjoint: agglomerate them among themselves first (fast), down to the budget, so
    // that the joint step below works on at most twice the budget.
    let new_groups = new_units.iter().map(|unit| Group::new(unit, inputs, None)).collect();
    groups.extend(merge::merge_disjoint(new_groups, package_budget));
    let params = MergeParams { horizon: CHURN_AMORTIZATION_WEEKS, disjoint: false };
    let merged = merge::merge_to_budget(groups, package_budget, &params);
    if merged.len() > package_budget.max(1) {
        return Err(format!("its {kept} package layers leave no room for the new components"));
    }
    for group in merged {
        match group.origin {
            Some(position) => {
                let layer = &mut layers[position];
                layer.dirty |= group.items.len() != layer.items.len();
                layer.items = group.items;
            }
            None => layers.push(Layer { items: group.items, origin: None, dirty: true, special: false }),
        }
    }
    layers.extend(new_special.into_iter().map(|item| Layer {
        items: vec![item],
        origin: None,
        dirty: true,
        special: true,
    }));

    // Bounded re-optimization.
    let fraction = clamp_probability(if max_moved_fraction.is_nan() { 0.0 } else { max_moved_fraction });
    let moved_budget = (fraction * inputs.items.len() as f64).floor() as usize;
    improve::improve(
        &mut layers,
        inputs,
        &item_origin,
        &ImproveParams {
            horizon: CHURN_AMORTIZATION_WEEKS,
            churn: true,
            package_budget,
            moved_budget: Some(moved_budget),
        },
    );

    let (kept, new): (Vec<Layer>, Vec<Layer>) = layers.into_iter().partition(|layer| layer.origin.is_some());
    let mut new: Vec<Vec<usize>> = new.into_iter().map(|layer| layer.items).collect();
    sort_most_stable_first(&mut new, inputs);
    Ok(kept.into_iter().map(|layer| layer.items).chain(new).collect())
}
