//! The planner's view of its inputs: components sorted by name and made unique, probabilities clamped,
//! sources numbered, and the special components that get a layer of their own.

use std::collections::BTreeMap;

use super::Component;

/// One component, ready for planning.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub name: String,
    pub special: bool,
    pub size: f64,
    pub probability: f64,
    /// Components with the same source change together.
    pub source: usize,
}

#[derive(Debug)]
pub(super) struct Inputs {
    /// Sorted by name, names unique.
    pub items: Vec<Item>,
    /// Items alone in their layer, ascending.
    pub alone: Vec<usize>,
    pub warnings: Vec<String>,
    /// Σ sizes, the scale for "negligible" improvements.
    pub total_size: f64,
    is_alone: Vec<bool>,
}

/// A probability in 0..=1; NaN counts as 1 (an unknown chance is planned for as a certain change, which
/// keeps the component from dragging stable ones along).
pub(super) fn clamp_probability(probability: f64) -> f64 {
    if probability.is_nan() { 1.0 } else { probability.clamp(0.0, 1.0) }
}

impl Inputs {
    /// `sources[i]` is the source of `components[i]`; `None`, a length mismatch, or an empty source make
    /// a component its own source.
    pub fn new<S: AsRef<str>>(components: &[Component], sources: Option<&[S]>) -> Inputs {
        let mut warnings = Vec::new();
        let sources = match sources {
            Some(sources) if sources.len() != components.len() => {
                warnings.push(format!(
                    "{} sources given for {} components: planning without sources",
                    sources.len(),
                    components.len()
                ));
                None
            }
            other => other,
        };
        let mut order: Vec<usize> = (0..components.len()).collect();
        order.sort_by(|&a, &b| components[a].name.cmp(&components[b].name).then(a.cmp(&b)));

        let mut items: Vec<Item> = Vec::with_capacity(components.len());
        let mut source_keys: Vec<Option<&str>> = Vec::with_capacity(components.len());
        let mut repeats: BTreeMap<&str, usize> = BTreeMap::new();
        for index in order {
            let component = &components[index];
            let probability = clamp_probability(component.change_probability);
            match items.last_mut() {
                Some(last) if last.name == component.name => {
                    last.size += component.size as f64;
                    last.probability = 1.0 - (1.0 - last.probability) * (1.0 - probability);
                    last.special |= component.kind.is_special();
                    *repeats.entry(component.name.as_str()).or_insert(1) += 1;
                }
                _ => {
                    items.push(Item {
                        name: component.name.clone(),
                        special: component.kind.is_special(),
                        size: component.size as f64,
                        probability,
                        source: 0,
                    });
                    source_keys.push(
                        sources.map(|sources| sources[index].as_ref()).filter(|source| !source.is_empty()),
                    );
                }
            }
        }
        for (name, count) in repeats {
            warnings.push(format!("component {name} is listed {count} times: planned as one component"));
        }

        // Number the sources in item order; components without one get a number of their own.
        let mut numbers: BTreeMap<&str, usize> = BTreeMap::new();
        let mut next = 0;
        for (item, key) in items.iter_mut().zip(&source_keys) {
            item.source = match key {
                Some(key) if !item.special => *numbers.entry(key).or_insert_with(|| {
                    next += 1;
                    next - 1
                }),
                _ => {
                    next += 1;
                    next - 1
                }
            };
        }
        let total_size = items.iter().map(|item| item.size).sum();
        let is_alone = vec![false; items.len()];
        Inputs { items, alone: Vec::new(), warnings, total_size, is_alone }
    }

    /// The item with this name.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.items.binary_search_by(|item| item.name.as_str().cmp(name)).ok()
    }

    pub fn is_alone(&self, item: usize) -> bool {
        self.is_alone.get(item).copied().unwrap_or(false)
    }

    /// Decides which special items get a layer of their own within `max_layers` (≥ 1): all of them,
    /// unless that leaves no layer for the rest; then those with the highest expected cost, and the
    /// others are planned like packages (with a warning).
    pub fn choose_alone(&mut self, max_layers: usize) {
        let specials: Vec<usize> = (0..self.items.len()).filter(|&item| self.items[item].special).collect();
        let has_packages = specials.len() < self.items.len();
        let mut alone = if specials.len() + usize::from(has_packages) <= max_layers {
            specials
        } else {
            let slots = max_layers.saturating_sub(1);
            let mut ranked = specials;
            ranked.sort_by(|&a, &b| {
                let cost = |item: usize| self.items[item].probability * self.items[item].size;
                cost(b).total_cmp(&cost(a)).then(a.cmp(&b))
            });
            let overflow: Vec<&str> =
                ranked.iter().skip(slots).map(|&item| self.items[item].name.as_str()).collect();
            self.warnings.push(format!(
                "max_layers {max_layers} leaves no layer of their own for {}: planned like packages",
                overflow.join(", ")
            ));
            ranked.truncate(slots);
            ranked
        };
        alone.sort_unstable();
        self.is_alone = vec![false; self.items.len()];
        for &item in &alone {
            self.is_alone[item] = true;
        }
        self.alone = alone;
    }

    /// The items not alone, grouped by source (one unit per source), ordered by their first item.
    pub fn package_units(&self) -> Vec<Vec<usize>> {
        self.units_of((0..self.items.len()).filter(|&item| !self.is_alone(item)))
    }

    /// `items` (ascending) grouped by source, ordered by their first item.
    pub fn units_of(&self, items: impl Iterator<Item = usize>) -> Vec<Vec<usize>> {
        let mut unit_of_source: BTreeMap<usize, usize> = BTreeMap::new();
        let mut units: Vec<Vec<usize>> = Vec::new();
        for item in items {
            let unit = *unit_of_source.entry(self.items[item].source).or_insert_with(|| {
                units.push(Vec::new());
                units.len() - 1
            });
            units[unit].push(item);
        }
        units
    }
}
