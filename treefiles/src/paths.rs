//! Lexical path handling: joining include names and normalizing `.` and `..` without touching the disk.

use std::path::{Component, Path, PathBuf};

/// Removes `.` components and folds `dir/..`; a leading `..` that cannot be folded is kept.
pub fn normalize(path: &Path) -> PathBuf {
    let mut parts: Vec<Component> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match parts.last() {
                Some(Component::Normal(_)) => {
                    parts.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => parts.push(component),
            },
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return PathBuf::from(".");
    }
    parts.iter().collect()
}

/// The directory part of a path, `.` for a bare file name.
pub fn parent_directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        let cases = [
            ("a/b/../c", "a/c"),
            ("./a/./b", "a/b"),
            ("../a", "../a"),
            ("a/../../b", "../b"),
            ("/a/../../b", "/b"),
            (".", "."),
            ("a/..", "."),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(Path::new(input)), PathBuf::from(expected), "{input}");
        }
    }

    #[test]
    fn parent_of_a_bare_name_is_dot() {
        assert_eq!(parent_directory(Path::new("manifest.yaml")), PathBuf::from("."));
        assert_eq!(parent_directory(Path::new("a/b.yaml")), PathBuf::from("a"));
    }
}
