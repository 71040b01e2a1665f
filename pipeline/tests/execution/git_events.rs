//! What the git remote does, as the streams show it: a force-push and a deleted branch are events, a
//! remote that is down is a git error retried with backoff (and at once on a webhook), never a crash.

use arbor_testsupport::git::TestFile;
use pipeline::store::Stream;

use crate::harness::{STREAM, Service};

async fn stream_where(service: &Service, what: &str, check: impl Fn(&Stream) -> bool) -> Stream {
    service
        .wait_for(what, || async {
            let stream = service.store.get_stream(STREAM).await.unwrap()?;
            check(&stream).then_some(stream)
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_pushes_deleted_branches_and_a_remote_that_is_down_show_on_the_stream() {
    let mut service = Service::new(false).await;
    service.start_scheduler();
    let first = service.remote.head(STREAM).unwrap().unwrap();
    stream_where(&service, "the first head", |stream| stream.head_commit.as_deref() == Some(first.as_str()))
        .await;

    let rewritten = service
        .remote
        .force_push(STREAM, &[("README.md", TestFile::text("rewritten\n"))], "Rewrite history")
        .unwrap();
    service.fetch_now.notify_one();
    stream_where(&service, "the force-push", |stream| {
        stream.last_event.as_deref().is_some_and(|event| event.starts_with("force-pushed from"))
            && stream.head_commit.as_deref() == Some(rewritten.as_str())
    })
    .await;
    let builds = service
        .wait_for("the compose of the rewritten head", || async {
            let builds = service.store.builds_of_commit(STREAM, &rewritten).await.unwrap();
            (!builds.is_empty()).then_some(builds)
        })
        .await;
    assert_eq!(builds.len(), 1, "the queued compose moved to the rewritten head");
    assert!(service.store.builds_of_commit(STREAM, &first).await.unwrap().is_empty());

    service.remote.take_offline().unwrap();
    service.fetch_now.notify_one();
    let down = stream_where(&service, "the git error", |stream| stream.git_error.is_some()).await;
    assert!(down.git_failures >= 1 && down.git_next_attempt_at.is_some(), "{down:?}");
    assert!(down.git_error.as_deref().unwrap().contains("remote.git"), "{:?}", down.git_error);
    service.fetch_now.notify_one();
    stream_where(&service, "a second failure", |stream| stream.git_failures >= 2).await;
    assert!(service.all_running(), "a remote that is down crashes nothing");

    service.remote.bring_online().unwrap();
    let later = service.push(&[("README.md", TestFile::text("back\n"))], "Back online");
    let recovered = stream_where(&service, "the recovery", |stream| {
        stream.git_error.is_none() && stream.head_commit.as_deref() == Some(later.as_str())
    })
    .await;
    assert_eq!(recovered.git_failures, 0);

    service.remote.delete_branch(STREAM).unwrap();
    service.fetch_now.notify_one();
    let deleted = stream_where(&service, "the deletion", |stream| {
        stream.last_event.as_deref().is_some_and(|event| event.contains("was deleted"))
    })
    .await;
    assert_eq!(deleted.head_commit.as_deref(), Some(later.as_str()), "the last head seen stays shown");
    assert!(service.all_running());
    service.stop().await;
}
