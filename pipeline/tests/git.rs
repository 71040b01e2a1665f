//! The git mirror against real remotes: bare repositories over file:// and over HTTP through
//! `git http-backend` (with and without a token), branches that advance, are force-pushed and
//! deleted, a remote that goes down and comes back, and exports of exact trees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use arbor_testsupport::git::{TestFile, TestGitRemote};
use pipeline::git::{BranchChange, CommitId, Credentials, GitError, Mirror};
use pipeline::secret::Secret;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn id(text: &str) -> CommitId {
    CommitId::parse(text).unwrap()
}

fn text(content: &str) -> TestFile {
    TestFile::text(content)
}

async fn mirror(state: &Path, url: &str, credentials: Credentials) -> Mirror {
    Mirror::open_or_create(state, url, credentials).await.unwrap()
}

fn changes(report: &pipeline::git::FetchReport) -> Vec<(String, BranchChange)> {
    report.branches.iter().map(|branch| (branch.branch.clone(), branch.change)).collect()
}

#[tokio::test]
async fn fetch_reports_new_advanced_force_pushed_deleted_and_unchanged_branches() {
    let remote = TestGitRemote::new().unwrap();
    let main = remote.commit("main", &[("README", text("exampleos\n"))], "Start").unwrap();
    let devel =
        remote.commit("testing-devel", &[("manifest.yaml", text("ref: a\n"))], "Add manifest").unwrap();
    let state = tempfile::tempdir().unwrap();
    let mirror = mirror(state.path(), &remote.file_url(), Credentials::None).await;
    assert_eq!(mirror.directory(), state.path().canonicalize().unwrap().join("git/mirror.git"));

    let first = mirror.fetch().await.unwrap();
    assert_eq!(
        changes(&first),
        [("main".into(), BranchChange::New), ("testing-devel".into(), BranchChange::New)]
    );
    let report = first.branch("testing-devel").unwrap();
    assert_eq!((report.before.clone(), report.after.clone()), (None, Some(id(&devel))));

    let advanced = remote.commit("testing-devel", &[("manifest.yaml", text("ref: b\n"))], "Bump").unwrap();
    let next = remote.commit("next", &[("manifest.yaml", text("ref: next\n"))], "Next").unwrap();
    let second = mirror.fetch().await.unwrap();
    assert_eq!(
        changes(&second),
        [
            ("main".into(), BranchChange::Unchanged),
            ("next".into(), BranchChange::New),
            ("testing-devel".into(), BranchChange::Advanced)
        ]
    );
    let report = second.branch("testing-devel").unwrap();
    assert_eq!((report.before.clone(), report.after.clone()), (Some(id(&devel)), Some(id(&advanced))));
    assert_eq!(second.changes().count(), 2);
    assert_eq!(mirror.head("main").await.unwrap(), Some(id(&main)));
    assert!(mirror.is_ancestor(&id(&devel), &id(&advanced)).await.unwrap());
    assert!(!mirror.is_ancestor(&id(&advanced), &id(&devel)).await.unwrap());

    let rewritten =
        remote.force_push("testing-devel", &[("manifest.yaml", text("ref: c\n"))], "Rewrite").unwrap();
    remote.delete_branch("next").unwrap();
    let third = mirror.fetch().await.unwrap();
    assert_eq!(
        changes(&third),
        [
            ("main".into(), BranchChange::Unchanged),
            ("next".into(), BranchChange::Deleted),
            ("testing-devel".into(), BranchChange::ForcePushed)
        ]
    );
    let deleted = third.branch("next").unwrap();
    assert_eq!((deleted.before.clone(), deleted.after.clone()), (Some(id(&next)), None));
    assert_eq!(mirror.head("next").await.unwrap(), None);
    assert_eq!(mirror.head("testing-devel").await.unwrap(), Some(id(&rewritten)));
    // The rewritten-away commit stays readable: queued jobs for it can still export it.
    assert!(!mirror.is_ancestor(&id(&advanced), &id(&rewritten)).await.unwrap());
    assert!(mirror.commit_info(&id(&advanced)).await.is_ok());

    // Reopening finds the same mirror.
    drop(mirror);
    let reopened = self::mirror(state.path(), &remote.file_url(), Credentials::None).await;
    let fourth = reopened.fetch().await.unwrap();
    assert!(fourth.changes().next().is_none(), "{fourth:?}");
}

#[tokio::test]
async fn commit_info_has_subject_author_and_times() {
    let remote = TestGitRemote::new().unwrap();
    remote.commit("main", &[("a", text("1"))], "First").unwrap();
    let second = remote.commit("main", &[("a", text("2"))], "manifest: add htop\n\nLonger body.").unwrap();
    let state = tempfile::tempdir().unwrap();
    let mirror = mirror(state.path(), &remote.file_url(), Credentials::None).await;
    mirror.fetch().await.unwrap();
    let info = mirror.commit_info(&id(&second)).await.unwrap();
    assert_eq!(info.commit, id(&second));
    assert_eq!(info.subject, "manifest: add htop");
    assert_eq!((info.author_name.as_str(), info.author_email.as_str()), ("Arbor Test", "test@arbor.invalid"));
    // The test remote's second commit: 2026-01-01T00:01:00Z.
    assert_eq!((info.author_time, info.committer_time), (1_767_225_660_000, 1_767_225_660_000));
    let unknown = id(&"1".repeat(40));
    assert!(matches!(mirror.commit_info(&unknown).await, Err(GitError::UnknownCommit { .. })));
}

#[tokio::test]
async fn http_remotes_with_and_without_a_token() {
    let remote = TestGitRemote::new().unwrap();
    let head = remote.commit("main", &[("manifest.yaml", text("ref: a\n"))], "Start").unwrap();

    let open = remote.serve_http().unwrap();
    let state = tempfile::tempdir().unwrap();
    let anonymous = mirror(state.path(), &open.url(), Credentials::None).await;
    anonymous.fetch().await.unwrap();
    assert_eq!(anonymous.head("main").await.unwrap(), Some(id(&head)));
    assert!(open.requests().iter().all(|request| request.authorization.is_none()));

    const TOKEN: &str = "arbor-test-token-7c1f";
    let guarded = remote.serve_http_with_token("arbor", TOKEN).unwrap();
    let token = Credentials::Token { username: "arbor".into(), token: Secret::new(TOKEN) };
    let state = tempfile::tempdir().unwrap();
    let authenticated = mirror(state.path(), &guarded.url(), token).await;
    authenticated.fetch().await.unwrap();
    assert_eq!(authenticated.head("main").await.unwrap(), Some(id(&head)));
    let requests = guarded.requests();
    assert!(
        requests.iter().all(|request| request.status == 200 && request.authorization.is_some()),
        "{requests:?}"
    );
    assert!(requests.iter().all(|request| !request.target.contains(TOKEN)));

    const WRONG_TOKEN: &str = "not-the-token-9d2e";
    for credentials in
        [Credentials::None, Credentials::Token { username: "arbor".into(), token: Secret::new(WRONG_TOKEN) }]
    {
        let state = tempfile::tempdir().unwrap();
        let refused = mirror(state.path(), &guarded.url(), credentials).await;
        let error = refused.fetch().await.unwrap_err();
        assert!(matches!(error, GitError::AuthenticationFailed { .. }), "{error:?}");
        assert!(error.is_remote_failure());
        let message = format!("{error} {error:?}");
        assert!(!message.contains(WRONG_TOKEN) && !message.contains("bm90LXRoZS10b2tlbi05ZDJl"), "{message}");
        assert!(message.contains("token-file"), "{message}");
        assert_eq!(refused.head("main").await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_remote_that_goes_down_is_a_typed_error_and_fetching_resumes_when_it_is_back() {
    let remote = TestGitRemote::new().unwrap();
    let first = remote.commit("main", &[("a", text("1"))], "First").unwrap();
    let mut server = remote.serve_http().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mirror = mirror(state.path(), &server.url(), Credentials::None).await;
    mirror.fetch().await.unwrap();

    server.stop();
    let second = remote.commit("main", &[("a", text("2"))], "Second").unwrap();
    let error = mirror.fetch().await.unwrap_err();
    assert!(matches!(error, GitError::RemoteUnreachable { .. }), "{error:?}");
    assert!(error.is_remote_failure());
    assert!(error.to_string().contains("retries with backoff"), "{error}");
    assert_eq!(mirror.head("main").await.unwrap(), Some(id(&first)), "a failed fetch changes nothing");

    server.restart().unwrap();
    let report = mirror.fetch().await.unwrap();
    assert_eq!(report.branch("main").unwrap().change, BranchChange::Advanced);
    assert_eq!(mirror.head("main").await.unwrap(), Some(id(&second)));
}

#[tokio::test]
async fn a_file_remote_that_disappears_is_a_typed_error() {
    let remote = TestGitRemote::new().unwrap();
    remote.commit("main", &[("a", text("1"))], "First").unwrap();
    let state = tempfile::tempdir().unwrap();
    let mirror = mirror(state.path(), &remote.file_url(), Credentials::None).await;
    remote.take_offline().unwrap();
    let error = mirror.fetch().await.unwrap_err();
    assert!(matches!(error, GitError::RepositoryNotFound { .. }), "{error:?}");
    assert!(error.is_remote_failure());
    remote.bring_online().unwrap();
    assert_eq!(mirror.fetch().await.unwrap().branch("main").unwrap().change, BranchChange::New);
}

/// What an exported file is: its kind, permission bits and content (or link target).
fn read_tree(root: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let mode = metadata.permissions().mode() & 0o777;
            if metadata.is_dir() {
                pending.push(path);
            } else if metadata.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                files.insert(name, ('l', 0, target.to_string_lossy().as_bytes().to_vec()));
            } else {
                files.insert(name, ('f', mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    files
}

#[tokio::test]
async fn export_writes_exactly_the_tree_of_a_commit() {
    let remote = TestGitRemote::new().unwrap();
    let files = [
        ("manifest.yaml", text("ref: exampleos/x86_64\n")),
        ("overlay.d/usr/bin/arbor-hello", TestFile::script("#!/bin/sh\necho hello\n")),
        ("latest.yaml", TestFile::Symlink("manifest.yaml".into())),
        // Line-ending attributes would change this on checkout; an export keeps the blob's bytes.
        (".gitattributes", text("*.txt text eol=crlf\n")),
        ("notes.txt", text("line one\nline two\n")),
    ];
    let commit = remote.commit("main", &files, "Tree").unwrap();
    let later = remote.commit("main", &[("notes.txt", TestFile::Removed)], "Drop notes").unwrap();
    let state = tempfile::tempdir().unwrap();
    let mirror = mirror(state.path(), &remote.file_url(), Credentials::None).await;
    mirror.fetch().await.unwrap();

    let work = state.path().join("work/job-1");
    let exported = mirror.export(&id(&commit), &work).await.unwrap();
    assert_eq!((exported.files, exported.directory.as_path()), (5, work.as_path()));
    let tree = read_tree(&work);
    let expected: BTreeMap<String, (char, u32, Vec<u8>)> = [
        (".gitattributes", ('f', 0o644, b"*.txt text eol=crlf\n".to_vec())),
        ("latest.yaml", ('l', 0, b"manifest.yaml".to_vec())),
        ("manifest.yaml", ('f', 0o644, b"ref: exampleos/x86_64\n".to_vec())),
        ("notes.txt", ('f', 0o644, b"line one\nline two\n".to_vec())),
        ("overlay.d/usr/bin/arbor-hello", ('f', 0o755, b"#!/bin/sh\necho hello\n".to_vec())),
    ]
    .into_iter()
    .map(|(path, entry)| (path.to_string(), entry))
    .collect();
    assert_eq!(tree, expected);
    let leftovers: Vec<_> = std::fs::read_dir(state.path().join("work"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["job-1"], "no staging directory is left behind");

    let error = mirror.export(&id(&later), &work).await.unwrap_err();
    assert!(matches!(error, GitError::DestinationExists { .. }), "{error:?}");
    let later_tree = state.path().join("work/job-2");
    mirror.export(&id(&later), &later_tree).await.unwrap();
    assert!(!read_tree(&later_tree).contains_key("notes.txt"));

    let unknown = mirror.export(&id(&"2".repeat(40)), &state.path().join("work/job-3")).await.unwrap_err();
    assert!(matches!(unknown, GitError::UnknownCommit { .. }), "{unknown:?}");
    assert!(!state.path().join("work/job-3").exists());
}

#[tokio::test]
async fn a_commit_with_a_submodule_is_refused_and_nothing_is_left_behind() {
    let remote = TestGitRemote::new().unwrap();
    let elsewhere = "1234567890abcdef1234567890abcdef12345678".to_string();
    let files =
        [("manifest.yaml", text("ref: x\n")), ("fedora-coreos-config", TestFile::Submodule(elsewhere))];
    let commit = remote.commit("main", &files, "Add a submodule").unwrap();
    let state = tempfile::tempdir().unwrap();
    let mirror = mirror(state.path(), &remote.file_url(), Credentials::None).await;
    mirror.fetch().await.unwrap();
    let destination = state.path().join("work/job");
    let error = mirror.export(&id(&commit), &destination).await.unwrap_err();
    assert!(
        matches!(&error, GitError::Submodule { path, .. } if path == "fedora-coreos-config"),
        "{error:?}"
    );
    assert!(!destination.exists());
}

fn borrowed(files: &[(String, TestFile)]) -> Vec<(&str, TestFile)> {
    files.iter().map(|(path, file)| (path.as_str(), file.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_exports_of_different_commits_do_not_interfere() {
    const FILES_PER_COMMIT: usize = 200;
    let remote = TestGitRemote::new().unwrap();
    let contents = |generation: &str| -> Vec<(String, TestFile)> {
        (0..FILES_PER_COMMIT)
            .map(|number| {
                (format!("dir{}/file{number}.txt", number % 10), text(&format!("{generation} {number}\n")))
            })
            .collect()
    };
    let (first_files, second_files) = (contents("first"), contents("second"));
    let first = remote.commit("a", &borrowed(&first_files), "First").unwrap();
    let second = remote.commit("b", &borrowed(&second_files), "Second").unwrap();
    let state = tempfile::tempdir().unwrap();
    let mirror = mirror(state.path(), &remote.file_url(), Credentials::None).await;
    mirror.fetch().await.unwrap();

    let (one, two) = (state.path().join("work/one"), state.path().join("work/two"));
    let (first, second) = (id(&first), id(&second));
    let (left, right) = tokio::join!(mirror.export(&first, &one), mirror.export(&second, &two));
    assert_eq!((left.unwrap().files, right.unwrap().files), (FILES_PER_COMMIT, FILES_PER_COMMIT));
    for (directory, generation) in [(&one, "first"), (&two, "second")] {
        let tree = read_tree(directory);
        assert_eq!(tree.len(), FILES_PER_COMMIT);
        for number in 0..FILES_PER_COMMIT {
            let path = format!("dir{}/file{number}.txt", number % 10);
            assert_eq!(tree[&path].2, format!("{generation} {number}\n").into_bytes(), "{path}");
        }
    }
}

#[tokio::test]
async fn a_cancelled_export_leaves_either_the_whole_tree_or_nothing() {
    const FILES: usize = 300;
    let remote = TestGitRemote::new().unwrap();
    let files: Vec<(String, TestFile)> =
        (0..FILES).map(|number| (format!("d{}/f{number}", number % 7), text(&number.to_string()))).collect();
    let commit = id(&remote.commit("main", &borrowed(&files), "Many files").unwrap());
    let state = tempfile::tempdir().unwrap();
    let mirror = mirror(state.path(), &remote.file_url(), Credentials::None).await;
    mirror.fetch().await.unwrap();
    let work = state.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    for attempt in 0..5 {
        let destination = work.join(format!("job-{attempt}"));
        // Dropping the future part-way is how a job's cancellation reaches the export.
        let outcome = tokio::time::timeout(
            std::time::Duration::from_millis(attempt * 5),
            mirror.export(&commit, &destination),
        )
        .await;
        // A cancelled export's blocking writer stops at the next file and removes its staging directory.
        let staging_left = || -> Vec<String> {
            std::fs::read_dir(&work)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with("job-"))
                .collect()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !staging_left().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(staging_left(), Vec::<String>::new(), "staging left behind");
        match outcome {
            Ok(result) => assert_eq!((result.unwrap().files, read_tree(&destination).len()), (FILES, FILES)),
            Err(_) => assert!(!destination.exists(), "a cancelled export left {}", destination.display()),
        }
    }
}

#[tokio::test]
async fn a_remote_that_stops_answering_is_stopped_after_the_fetch_timeout() {
    // Accepts connections and never answers: a hung remote.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/remote.git", listener.local_addr().unwrap());
    let holder = std::thread::spawn(move || {
        let (connection, _) = listener.accept().unwrap();
        let mut buffer = [0u8; 1024];
        // Reads until git is killed and the connection closes.
        while std::io::Read::read(&mut &connection, &mut buffer).is_ok_and(|count| count > 0) {}
    });
    let state = tempfile::tempdir().unwrap();
    let timeout = std::time::Duration::from_secs(1);
    let mirror = mirror(state.path(), &url, Credentials::None).await.with_fetch_timeout(timeout);
    let error = mirror.fetch().await.unwrap_err();
    assert!(matches!(error, GitError::TimedOut { timeout: limit, .. } if limit == timeout), "{error:?}");
    assert!(error.is_remote_failure());
    // git and its git-remote-http helper were killed, so the connection closed.
    holder.join().unwrap();
}
