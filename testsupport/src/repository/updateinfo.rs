//! Advisories: writing `updateinfo.xml` and adding it to `repodata/` with `modifyrepo_c`.

use crate::calendar::utc_from_unix;
use crate::rpm_builder::{DEFAULT_BUILD_TIME, RpmSpec};
use crate::tools::run_tool;
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// The `type` attribute of an advisory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdvisoryKind {
    Security,
    Bugfix,
    Enhancement,
    NewPackage,
}

impl AdvisoryKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Security => "security",
            Self::Bugfix => "bugfix",
            Self::Enhancement => "enhancement",
            Self::NewPackage => "newpackage",
        }
    }
}

/// One package an advisory updates to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvisoryPackage {
    pub name: String,
    pub epoch: u32,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub source_rpm: String,
    pub file_name: String,
}

impl AdvisoryPackage {
    /// The package built from `spec`.
    pub fn from_spec(spec: &RpmSpec) -> Self {
        Self {
            name: spec.name().to_string(),
            epoch: spec.declared_epoch().unwrap_or(0),
            version: spec.version().to_string(),
            release: spec.release().to_string(),
            arch: spec.architecture().to_string(),
            source_rpm: spec.source_rpm_name(),
            file_name: spec.file_name(),
        }
    }
}

/// One `<update>` of `updateinfo.xml`.
#[derive(Clone, Debug)]
pub struct Advisory {
    pub id: String,
    pub kind: AdvisoryKind,
    pub title: String,
    pub severity: Option<String>,
    pub description: String,
    /// Seconds since the Unix epoch.
    pub issued: u32,
    /// `(href, id, type)` of each `<reference>`, e.g. a bugzilla or CVE link.
    pub references: Vec<(String, String, String)>,
    pub packages: Vec<AdvisoryPackage>,
}

impl Advisory {
    /// An advisory with id `id` (e.g. `FEDORA-2023-0001`), titled after the id, issued at
    /// [`DEFAULT_BUILD_TIME`], with no packages yet.
    pub fn new(id: &str, kind: AdvisoryKind) -> Self {
        Self {
            id: id.to_string(),
            kind,
            title: format!("{id} update"),
            severity: None,
            description: format!("Test advisory {id}"),
            issued: DEFAULT_BUILD_TIME,
            references: Vec::new(),
            packages: Vec::new(),
        }
    }

    /// Sets the title.
    pub fn title(mut self, title: &str) -> Self {
        self.title = title.to_string();
        self
    }

    /// Sets the severity, e.g. `Important`.
    pub fn severity(mut self, severity: &str) -> Self {
        self.severity = Some(severity.to_string());
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_string();
        self
    }

    /// Sets the issue time in seconds since the Unix epoch.
    pub fn issued(mut self, seconds_since_epoch: u32) -> Self {
        self.issued = seconds_since_epoch;
        self
    }

    /// Adds a `<reference href id type>` (type e.g. `bugzilla`, `cve`).
    pub fn reference(mut self, href: &str, id: &str, reference_type: &str) -> Self {
        self.references.push((href.to_string(), id.to_string(), reference_type.to_string()));
        self
    }

    /// Adds the package built from `spec` to the advisory's package list.
    pub fn package(mut self, spec: &RpmSpec) -> Self {
        self.packages.push(AdvisoryPackage::from_spec(spec));
        self
    }
}

/// Escapes text for XML element content and attribute values.
fn escape_xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), the date format of Fedora's `updateinfo.xml`.
fn updateinfo_date(seconds_since_epoch: u32) -> String {
    let time = utc_from_unix(i64::from(seconds_since_epoch));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        time.year, time.month, time.day, time.hour, time.minute, time.second
    )
}

/// The text of `updateinfo.xml` for `advisories`.
pub fn updateinfo_xml(advisories: &[Advisory]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>\n");
    for advisory in advisories {
        write_advisory(&mut xml, advisory).expect("writing to a String cannot fail");
    }
    xml.push_str("</updates>\n");
    xml
}

fn write_advisory(xml: &mut String, advisory: &Advisory) -> std::fmt::Result {
    let kind = advisory.kind.as_str();
    writeln!(
        xml,
        "  <update from=\"updates@example.invalid\" status=\"stable\" type=\"{kind}\" version=\"2.0\">"
    )?;
    writeln!(xml, "    <id>{}</id>", escape_xml(&advisory.id))?;
    writeln!(xml, "    <title>{}</title>", escape_xml(&advisory.title))?;
    writeln!(xml, "    <issued date=\"{}\"/>", updateinfo_date(advisory.issued))?;
    writeln!(xml, "    <updated date=\"{}\"/>", updateinfo_date(advisory.issued))?;
    writeln!(xml, "    <rights>Copyright (C) the arbor test suite</rights>")?;
    if let Some(severity) = &advisory.severity {
        writeln!(xml, "    <severity>{}</severity>", escape_xml(severity))?;
    }
    writeln!(xml, "    <summary>{}</summary>", escape_xml(&advisory.title))?;
    writeln!(xml, "    <description>{}</description>", escape_xml(&advisory.description))?;
    writeln!(xml, "    <references>")?;
    for (href, id, reference_type) in &advisory.references {
        let (href, id, reference_type) = (escape_xml(href), escape_xml(id), escape_xml(reference_type));
        writeln!(
            xml,
            "      <reference href=\"{href}\" id=\"{id}\" type=\"{reference_type}\" title=\"{id}\"/>"
        )?;
    }
    writeln!(xml, "    </references>")?;
    writeln!(xml, "    <pkglist>\n      <collection short=\"test\">\n        <name>test</name>")?;
    for package in &advisory.packages {
        writeln!(
            xml,
            "        <package name=\"{}\" epoch=\"{}\" version=\"{}\" release=\"{}\" arch=\"{}\" src=\"{}\">",
            escape_xml(&package.name),
            package.epoch,
            escape_xml(&package.version),
            escape_xml(&package.release),
            escape_xml(&package.arch),
            escape_xml(&package.source_rpm)
        )?;
        writeln!(xml, "          <filename>{}</filename>", escape_xml(&package.file_name))?;
        writeln!(xml, "        </package>")?;
    }
    writeln!(xml, "      </collection>\n    </pkglist>\n  </update>")
}

/// Writes `updateinfo.xml` for `advisories`, adds it to `root/repodata` with `modifyrepo_c`, and
/// makes its `repomd.xml` timestamp and file mtime equal to `revision` (modifyrepo_c uses "now").
pub(super) fn add_to_repository(
    root: &Path,
    advisories: &[Advisory],
    revision: u64,
    simple_metadata_filenames: bool,
) -> Result<()> {
    let staging = tempfile::Builder::new().prefix("arbor-updateinfo-").tempdir()?;
    let source = staging.path().join("updateinfo.xml");
    std::fs::write(&source, updateinfo_xml(advisories))
        .with_context(|| format!("writing {}", source.display()))?;
    let repodata = root.join("repodata");
    let mut arguments = vec!["--mdtype=updateinfo".to_string()];
    if simple_metadata_filenames {
        arguments.push("--simple-md-filenames".to_string());
    }
    arguments.push(source.to_string_lossy().into_owned());
    arguments.push(repodata.to_string_lossy().into_owned());
    run_tool("modifyrepo_c", &arguments)?;
    pin_updateinfo_timestamp(&repodata, revision)
}

/// Replaces the `<timestamp>` of the `updateinfo` record in `repomd.xml` by `revision` and sets
/// the mtime of the compressed file and of `repomd.xml` to it.
fn pin_updateinfo_timestamp(repodata: &Path, revision: u64) -> Result<()> {
    let repomd_path = repodata.join("repomd.xml");
    let repomd = std::fs::read_to_string(&repomd_path)?;
    let start =
        repomd.find("<data type=\"updateinfo\">").context("modifyrepo_c wrote no updateinfo record")?;
    let end = start + repomd[start..].find("</data>").context("unterminated updateinfo record")?;
    let record = &repomd[start..end];
    let (Some(open), Some(close)) = (record.find("<timestamp>"), record.find("</timestamp>")) else {
        bail!("{}: the updateinfo record has no <timestamp>", repomd_path.display());
    };
    let pinned = format!("{}<timestamp>{revision}{}", &record[..open], &record[close..]);
    let location = record
        .split("<location href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the updateinfo record has no location")?
        .to_string();
    std::fs::write(&repomd_path, format!("{}{pinned}{}", &repomd[..start], &repomd[end..]))?;
    let mtime = UNIX_EPOCH + Duration::from_secs(revision);
    let compressed = repodata.parent().context("repodata has a parent")?.join(location);
    for path in [&compressed, &repomd_path] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|file| file.set_modified(mtime))
            .with_context(|| format!("setting the mtime of {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_formats_advisories() {
        let spec = RpmSpec::new("app", "2.0", "1").epoch(3).arch("x86_64");
        let advisory = Advisory::new("TEST-1", AdvisoryKind::Security)
            .title("a <b> & \"c\"")
            .severity("Important")
            .reference("https://bugs.example.invalid/1", "1", "bugzilla")
            .package(&spec);
        let xml = updateinfo_xml(&[advisory]);
        assert!(xml.contains("<title>a &lt;b&gt; &amp; &quot;c&quot;</title>"), "{xml}");
        assert!(xml.contains("<issued date=\"2023-11-14 22:13:20\"/>"), "{xml}");
        assert!(
            xml.contains("name=\"app\" epoch=\"3\" version=\"2.0\" release=\"1\" arch=\"x86_64\""),
            "{xml}"
        );
        assert!(xml.contains("src=\"app-2.0-1.src.rpm\""), "{xml}");
        assert!(xml.contains("<filename>app-2.0-1.x86_64.rpm</filename>"), "{xml}");
    }
}
