//! What compose and join jobs carry: the payload a worker gets and the result it reports (JSON in the
//! queue's `payload` and `result` columns and in the worker protocol).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use treefiles::Variable;

use crate::config::StreamSettings;
use crate::store::{BuildResult, BuildStatus, Layer, Phase};

/// Everything a compose needs besides the worker's own cache, token and registry credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposePayload {
    pub stream: String,
    pub arch: String,
    /// The git commit whose tree is composed.
    pub commit: String,
    /// The treefile's path inside the repository.
    pub treefile: String,
    /// Treefile variables, as JSON (booleans, non-negative integers, strings).
    pub variables: BTreeMap<String, serde_json::Value>,
    /// The image repository, without a tag.
    pub image: String,
    /// Tags moved after the version tag, in order (the stream's tag last).
    pub tags: Vec<String>,
    /// Also tag the image `:<version>` before `tags`.
    pub tag_version: bool,
    /// Compose even if the inputs equal the previous build's.
    pub force: bool,
}

impl ComposePayload {
    /// The payload of a compose of `stream` at `commit` for `arch`. A stream of one arch pushes
    /// `:<version>` then `:<stream>`; a stream of several pushes `:<stream>-<arch>` only, and the join
    /// job tags the image index.
    pub fn new(stream: &StreamSettings, arch: &str, commit: &str, force: bool) -> Self {
        let single_arch = stream.arches.len() == 1;
        ComposePayload {
            stream: stream.name.clone(),
            arch: arch.to_string(),
            commit: commit.to_string(),
            treefile: stream.treefile.clone(),
            variables: stream
                .variables
                .iter()
                .map(|(name, value)| (name.clone(), variable_json(value)))
                .collect(),
            image: stream.image.clone(),
            tags: vec![if single_arch { stream.name.clone() } else { format!("{}-{arch}", stream.name) }],
            tag_version: single_arch,
            force,
        }
    }

    /// The treefile variables back as the treefile model's values.
    pub fn treefile_variables(&self) -> Result<BTreeMap<String, Variable>, String> {
        self.variables
            .iter()
            .map(|(name, value)| {
                let variable = match value {
                    serde_json::Value::Bool(flag) => Variable::Bool(*flag),
                    serde_json::Value::Number(number) => {
                        Variable::Number(number.as_u64().ok_or_else(|| {
                            format!("variable {name:?}: {number} is not a non-negative integer")
                        })?)
                    }
                    serde_json::Value::String(text) => Variable::Text(text.clone()),
                    other => {
                        return Err(format!("variable {name:?}: {other} is not a boolean, number or string"));
                    }
                };
                Ok((name.clone(), variable))
            })
            .collect()
    }
}

fn variable_json(variable: &Variable) -> serde_json::Value {
    match variable {
        Variable::Bool(flag) => serde_json::Value::Bool(*flag),
        Variable::Number(number) => serde_json::Value::from(*number),
        Variable::Text(text) => serde_json::Value::String(text.clone()),
    }
}

/// The build whose image a compose plans its layers against and stops early on (same input hash),
/// chosen when the job is claimed: the stream and arch's last build with an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousBuild {
    pub build_id: i64,
    /// `registry:HOST/REPOSITORY@sha256:...`, pinned by digest.
    pub image: String,
    pub inputhash: Option<String>,
}

/// How a compose ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComposeStatus {
    /// A new image was pushed.
    Succeeded,
    /// The inputs equal the previous build's: nothing was composed or pushed.
    Unchanged,
}

/// What a worker reports when a compose succeeded (the job's `result`). The server fills in what needs
/// the database (the previous build, the package diff) when it records the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeResult {
    pub status: ComposeStatus,
    pub version: Option<String>,
    pub inputhash: Option<String>,
    pub ostree_commit: Option<String>,
    /// `HOST/REPOSITORY@sha256:...`.
    pub image_reference: Option<String>,
    pub manifest_digest: Option<String>,
    /// NEVRAs, sorted.
    pub packages: Vec<String>,
    /// What a client of the previous build downloads.
    pub download_bytes: Option<u64>,
    pub image_bytes: Option<u64>,
    pub phases: Vec<Phase>,
    /// The pushed image's layers in the manifest's order (empty when unchanged; absent from workers
    /// older than this field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
}

impl ComposeResult {
    /// The build row's fields for this result (without the previous build and the diff).
    pub fn build_result(&self) -> BuildResult {
        let mut build = BuildResult::new(match self.status {
            ComposeStatus::Succeeded => BuildStatus::Succeeded,
            ComposeStatus::Unchanged => BuildStatus::Unchanged,
        });
        build.version = self.version.clone();
        build.inputhash = self.inputhash.clone();
        build.ostree_commit = self.ostree_commit.clone();
        build.image_reference = self.image_reference.clone();
        build.manifest_digest = self.manifest_digest.clone();
        build.packages = Some(self.packages.clone());
        build.download_bytes = self.download_bytes.map(|bytes| bytes as i64);
        build.image_bytes = self.image_bytes.map(|bytes| bytes as i64);
        build.phases = self.phases.clone();
        build.layers = (!self.layers.is_empty()).then(|| self.layers.clone());
        build
    }
}

/// Joins the per-arch images of a stream's commit into one image index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinPayload {
    pub stream: String,
    pub commit: String,
    pub image: String,
    /// The builds joined, one per arch.
    pub build_ids: Vec<i64>,
    /// `HOST/REPOSITORY@sha256:...` of each build, in `build_ids` order.
    pub images: Vec<String>,
    /// Tags moved in order, the stream's last (`:<version>`, `:<stream>`).
    pub tags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(arches: &[&str]) -> StreamSettings {
        StreamSettings {
            name: "testing-devel".to_string(),
            branch: "testing-devel".to_string(),
            treefile: "manifest.yaml".to_string(),
            arches: arches.iter().map(|arch| arch.to_string()).collect(),
            image: "registry.example.com/os/exampleos".to_string(),
            variables: BTreeMap::from([
                ("prod".to_string(), Variable::Bool(true)),
                ("level".to_string(), Variable::Number(3)),
                ("edition".to_string(), Variable::Text("server".to_string())),
            ]),
            priority: 0,
        }
    }

    #[test]
    fn one_arch_tags_the_stream_several_leave_it_to_the_join() {
        let single = ComposePayload::new(&stream(&["x86_64"]), "x86_64", "abc", false);
        assert_eq!((single.tags, single.tag_version), (vec!["testing-devel".to_string()], true));
        let multi = ComposePayload::new(&stream(&["x86_64", "aarch64"]), "aarch64", "abc", false);
        assert_eq!((multi.tags, multi.tag_version), (vec!["testing-devel-aarch64".to_string()], false));
    }

    #[test]
    fn variables_survive_the_json_round_trip() {
        let settings = stream(&["x86_64"]);
        let payload = ComposePayload::new(&settings, "x86_64", "abc", false);
        let text = serde_json::to_string(&payload).unwrap();
        let back: ComposePayload = serde_json::from_str(&text).unwrap();
        assert_eq!(back.treefile_variables().unwrap(), settings.variables);
    }
}
