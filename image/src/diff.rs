//! Layer-level comparison of two image manifests: which layers a client that has the old image keeps,
//! which it must download and how many bytes that costs. Clients cache layers by their compressed blob
//! digest, so a layer is "kept" exactly when the old manifest lists the same digest.

use std::collections::HashSet;
use std::fmt;

use super::encapsulate::ANNOTATION_COMPONENTS;
use super::layout::{Descriptor, ImageManifest};
use common::human::{human_bytes, short_digest};

/// How the first layer is described when it has no components annotation.
const COMMIT_LAYER_DESCRIPTION: &str = "commit layer";
/// How a layer with an empty components annotation (the reserved bin) is described.
const NO_COMPONENTS_DESCRIPTION: &str = "(no components)";
/// Components text longer than this is cut in the layer lists.
const DESCRIPTION_WIDTH: usize = 72;
const PERCENT: f64 = 100.0;

/// One layer of either image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerChange {
    pub digest: String,
    pub size: u64,
    /// The `ostree.components` annotation, or "commit layer" for an unannotated first layer.
    pub description: String,
}

/// How the new image differs from the old one, layer by layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDiff {
    /// Layers of the new image whose digest the old image lacks (in new-image order).
    pub added: Vec<LayerChange>,
    /// Layers of the old image whose digest the new image lacks (in old-image order).
    pub removed: Vec<LayerChange>,
    /// Layers of the new image the old image has too.
    pub kept: Vec<LayerChange>,
    /// What a client holding the old image downloads: the distinct added layers, plus the config when it
    /// changed.
    pub download_bytes: u64,
    /// The whole new image: its distinct layers and its config.
    pub new_total_bytes: u64,
}

/// Compares the layers of `old` and `new` by digest.
pub fn diff_manifests(old: &ImageManifest, new: &ImageManifest) -> ImageDiff {
    let old_digests: HashSet<&str> = old.layers.iter().map(|layer| layer.digest.as_str()).collect();
    let new_digests: HashSet<&str> = new.layers.iter().map(|layer| layer.digest.as_str()).collect();
    let mut diff = ImageDiff {
        added: Vec::new(),
        removed: Vec::new(),
        kept: Vec::new(),
        download_bytes: 0,
        new_total_bytes: new.config.size,
    };
    let mut counted: HashSet<&str> = HashSet::new();
    for (index, layer) in new.layers.iter().enumerate() {
        let first_time = counted.insert(layer.digest.as_str());
        if first_time {
            diff.new_total_bytes += layer.size;
        }
        if old_digests.contains(layer.digest.as_str()) {
            diff.kept.push(change(index, layer));
        } else {
            if first_time {
                diff.download_bytes += layer.size;
            }
            diff.added.push(change(index, layer));
        }
    }
    if old.config.digest != new.config.digest {
        diff.download_bytes += new.config.size;
    }
    diff.removed = old
        .layers
        .iter()
        .enumerate()
        .filter(|(_, layer)| !new_digests.contains(layer.digest.as_str()))
        .map(|(index, layer)| change(index, layer))
        .collect();
    diff
}

fn change(index: usize, layer: &Descriptor) -> LayerChange {
    let description = match layer.annotations.get(ANNOTATION_COMPONENTS) {
        Some(components) if components.is_empty() => NO_COMPONENTS_DESCRIPTION.to_string(),
        Some(components) => components.clone(),
        None if index == 0 => COMMIT_LAYER_DESCRIPTION.to_string(),
        None => format!("layer {index}"),
    };
    LayerChange { digest: layer.digest.clone(), size: layer.size, description }
}

fn total(layers: &[LayerChange]) -> u64 {
    layers.iter().map(|layer| layer.size).sum()
}

fn short_description(text: &str) -> String {
    if text.chars().count() <= DESCRIPTION_WIDTH {
        return text.to_string();
    }
    let cut: String = text.chars().take(DESCRIPTION_WIDTH).collect();
    format!("{cut}…")
}

impl fmt::Display for ImageDiff {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "{:<10} {:>6} {:>12}", "", "layers", "size")?;
        for (label, layers) in [("kept", &self.kept), ("added", &self.added), ("removed", &self.removed)] {
            writeln!(formatter, "{label:<10} {:>6} {:>12}", layers.len(), human_bytes(total(layers)))?;
        }
        for (heading, sign, layers) in [("added", '+', &self.added), ("removed", '-', &self.removed)] {
            if layers.is_empty() {
                continue;
            }
            writeln!(formatter, "\n{heading}:")?;
            for layer in layers.iter() {
                writeln!(
                    formatter,
                    "  {sign} {:<20} {:>10}  {}",
                    short_digest(&layer.digest),
                    human_bytes(layer.size),
                    short_description(&layer.description)
                )?;
            }
        }
        let share = if self.new_total_bytes == 0 {
            0.0
        } else {
            self.download_bytes as f64 * PERCENT / self.new_total_bytes as f64
        };
        write!(
            formatter,
            "\na client with OLD downloads {} ({share:.1}% of the image)",
            human_bytes(self.download_bytes)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::layout::{IMAGE_CONFIG_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, LAYER_GZIP_MEDIA_TYPE};

    const CONFIG_SIZE: u64 = 1_000;

    fn digest(seed: &str) -> String {
        crate::layout::sha256_digest(seed.as_bytes())
    }

    /// A layer named `name` of `size` bytes; `components` None leaves the annotation out.
    fn layer(name: &str, size: u64, components: Option<&str>) -> Descriptor {
        let mut annotations = BTreeMap::new();
        if let Some(components) = components {
            annotations.insert(ANNOTATION_COMPONENTS.to_string(), components.to_string());
        }
        Descriptor {
            media_type: LAYER_GZIP_MEDIA_TYPE.to_string(),
            digest: digest(name),
            size,
            platform: None,
            annotations,
        }
    }

    fn manifest(config: &str, layers: Vec<Descriptor>) -> ImageManifest {
        ImageManifest {
            schema_version: 2,
            media_type: Some(IMAGE_MANIFEST_MEDIA_TYPE.to_string()),
            config: Descriptor {
                media_type: IMAGE_CONFIG_MEDIA_TYPE.to_string(),
                digest: digest(config),
                size: CONFIG_SIZE,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers,
            annotations: BTreeMap::new(),
        }
    }

    fn base_layers() -> Vec<Descriptor> {
        vec![
            layer("commit-1", 3_000, None),
            layer("glibc", 50_000, Some("glibc,glibc-common")),
            layer("bash", 20_000, Some("bash")),
            layer("reserved", 100, Some("")),
        ]
    }

    #[test]
    fn download_sizes() {
        struct Case {
            name: &'static str,
            old: ImageManifest,
            new: ImageManifest,
            download: u64,
            counts: (usize, usize, usize),
        }
        let base = manifest("config-1", base_layers());
        let mut one_changed = base_layers();
        one_changed[2] = layer("bash-2", 21_000, Some("bash"));
        let disjoint = vec![layer("commit-x", 4_000, None), layer("other", 70_000, Some("other"))];
        let mut duplicated = base_layers();
        duplicated.push(layer("new", 500, Some("new")));
        duplicated.push(layer("new", 500, Some("new")));
        let cases = [
            Case { name: "same image", old: base.clone(), new: base.clone(), download: 0, counts: (0, 0, 4) },
            Case {
                name: "one changed layer",
                old: base.clone(),
                new: manifest("config-2", one_changed),
                download: 21_000 + CONFIG_SIZE,
                counts: (1, 1, 3),
            },
            Case {
                name: "disjoint",
                old: base.clone(),
                new: manifest("config-3", disjoint),
                download: 4_000 + 70_000 + CONFIG_SIZE,
                counts: (2, 4, 0),
            },
            Case {
                name: "a new layer listed twice is downloaded once",
                old: base.clone(),
                new: manifest("config-4", duplicated),
                download: 500 + CONFIG_SIZE,
                counts: (2, 0, 4),
            },
        ];
        for case in cases {
            let diff = diff_manifests(&case.old, &case.new);
            assert_eq!(diff.download_bytes, case.download, "{}", case.name);
            assert_eq!((diff.added.len(), diff.removed.len(), diff.kept.len()), case.counts, "{}", case.name);
            assert!(diff.download_bytes <= diff.new_total_bytes, "{}", case.name);
        }
    }

    #[test]
    fn totals_and_descriptions() {
        let base = manifest("config-1", base_layers());
        let diff = diff_manifests(&base, &base);
        assert_eq!(diff.new_total_bytes, 3_000 + 50_000 + 20_000 + 100 + CONFIG_SIZE);
        let descriptions: Vec<&str> = diff.kept.iter().map(|layer| layer.description.as_str()).collect();
        assert_eq!(descriptions, ["commit layer", "glibc,glibc-common", "bash", "(no components)"]);
        let unannotated = manifest("config-1", vec![layer("a", 1, None), layer("b", 1, None)]);
        let diff = diff_manifests(&base, &unannotated);
        assert_eq!(diff.added[1].description, "layer 1");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1_023), "1023 B");
        assert_eq!(human_bytes(1_536), "1.5 KiB");
        assert_eq!(human_bytes(12_900_000), "12.3 MiB");
        assert_eq!(human_bytes(3 << 40), "3072.0 GiB");
    }

    #[test]
    fn display_table() {
        let old = manifest("config-1", base_layers());
        let mut new_layers = base_layers();
        new_layers[0] = layer("commit-2", 3_100, None);
        new_layers[2] = layer("bash-2", 2_100_000, Some("bash,readline"));
        new_layers.remove(3);
        let diff = diff_manifests(&old, &manifest("config-2", new_layers));
        insta::assert_snapshot!(diff.to_string());
    }
}
