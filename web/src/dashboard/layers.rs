//! An image's layers as a table, and what a client holding another build's image downloads: every layer
//! whose digest that image does not have (clients fetch layers by digest, so shared ones stay).

use std::collections::HashSet;

use maud::{Markup, html};
use pipeline::api::Layer;

use super::components as ui;

/// Components named in a layer's row before "and N more".
const COMPONENTS_SHOWN: usize = 4;

/// The layers of `layers` a client holding `held` lacks, and their compressed bytes together.
pub(crate) fn download<'a>(held: &[Layer], layers: &'a [Layer]) -> (Vec<&'a Layer>, i64) {
    let held: HashSet<&str> = held.iter().map(|layer| layer.digest.as_str()).collect();
    let mut seen = HashSet::new();
    let missing: Vec<&Layer> = layers
        .iter()
        .filter(|layer| !held.contains(layer.digest.as_str()) && seen.insert(layer.digest.as_str()))
        .collect();
    let bytes = missing.iter().map(|layer| layer.size.max(0)).sum();
    (missing, bytes)
}

/// A table of `layers`; with `against` (the layers of the build named `against_label`), whether a client
/// of that build downloads each one.
pub(crate) fn table(id: &str, layers: &[Layer], against: Option<(&str, &[Layer])>) -> Markup {
    // The label, how many layers and bytes a client of that build downloads, and which digests.
    let update = against.map(|(label, held)| {
        let (missing, bytes) = download(held, layers);
        let digests: HashSet<&str> = missing.iter().map(|layer| layer.digest.as_str()).collect();
        (label, missing.len(), bytes, digests)
    });
    let downloaded = update.as_ref().map(|(_, _, _, digests)| digests);
    html! {
        @if let Some((label, count, bytes, _)) = &update {
            p {
                "A client of " (label) " downloads " strong { (count) " of " (layers.len()) " layers" }
                ", " (ui::bytes(Some(*bytes))) "."
            }
        }
        div.table-wrap {
            table.responsive id=(id) {
                caption.visually-hidden { "Layers of the image" }
                thead {
                    tr {
                        th scope="col" { "#" }
                        th scope="col" { "Holds" }
                        th scope="col" { "Digest" }
                        th scope="col" { "Size" }
                        @if downloaded.is_some() { th scope="col" { "Downloaded" } }
                    }
                }
                tbody {
                    @for (index, layer) in layers.iter().enumerate() {
                        tr {
                            td data-label="#" { (index + 1) }
                            td data-label="Holds" { (holds(layer)) }
                            td data-label="Digest" { (ui::short(&layer.digest, "layer digest")) }
                            td data-label="Size" { (ui::bytes(Some(layer.size))) }
                            @if let Some(downloaded) = &downloaded {
                                td data-label="Downloaded" {
                                    @if downloaded.contains(layer.digest.as_str()) { span.change-added { "↓ yes" } }
                                    @else { span.muted { "no, already there" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A layer's description and the first of its components.
fn holds(layer: &Layer) -> Markup {
    let shown: Vec<&str> = layer.components.iter().take(COMPONENTS_SHOWN).map(String::as_str).collect();
    let more = layer.components.len().saturating_sub(COMPONENTS_SHOWN);
    // A layer of one package is described by that package's name already.
    let described_by_name = layer.components.len() == 1 && layer.description.contains(shown[0]);
    html! {
        (layer.description)
        @if !shown.is_empty() && !described_by_name {
            div.muted title=(layer.components.join(", ")) {
                (shown.join(", "))
                @if more > 0 { " and " (more) " more" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(digest: &str, size: i64) -> Layer {
        Layer { digest: digest.into(), size, description: digest.into(), components: Vec::new() }
    }

    #[test]
    fn a_client_downloads_the_layers_it_lacks_once() {
        let old = [layer("sha256:commit-1", 10), layer("sha256:kernel-1", 500), layer("sha256:base", 300)];
        let new = [
            layer("sha256:commit-2", 12),
            layer("sha256:kernel-2", 520),
            layer("sha256:base", 300),
            layer("sha256:kernel-2", 520),
        ];
        let (missing, bytes) = download(&old, &new);
        let digests: Vec<&str> = missing.iter().map(|layer| layer.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:commit-2", "sha256:kernel-2"]);
        assert_eq!(bytes, 532);
        assert_eq!(download(&new, &new).1, 0);
        assert_eq!(download(&[], &old).1, 810);
    }
}
