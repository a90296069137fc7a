//! The manifest-file provider against real temporary directories and the real notify watcher.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::router::DiagnosticKind;
use sluice::watch::{run_file_provider, ProviderUpdate, WatchError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

type Update = Option<Arc<ProviderUpdate>>;

const DEBOUNCE: Duration = Duration::from_millis(100);
/// Changes must show within 1 s; the margin absorbs a loaded CI machine.
const WITHIN: Duration = Duration::from_millis(1500);

fn ingress(name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\nspec:\n  rules:\n  - host: {host}\n---\n"
    )
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create test dir");
    }
    fs::write(path, text).expect("write test file");
}

/// A running provider and the receiving end of its updates.
struct Running {
    rx: watch::Receiver<Update>,
    task: JoinHandle<Result<(), WatchError>>,
}

impl Running {
    async fn start(path: PathBuf) -> Self {
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(run_file_provider(path, DEBOUNCE, tx));
        let mut running = Self { rx, task };
        running.next().await;
        running
    }

    /// The next update, failing the test if none comes in time.
    async fn next(&mut self) -> Arc<ProviderUpdate> {
        let started = Instant::now();
        tokio::time::timeout(WITHIN, self.rx.changed())
            .await
            .expect("an update in time")
            .expect("provider still running");
        eprintln!("update after {:?}", started.elapsed());
        self.rx
            .borrow_and_update()
            .clone()
            .expect("a published update")
    }

    /// True if no update arrives within `quiet`.
    async fn stays_quiet(&mut self, quiet: Duration) -> bool {
        tokio::time::timeout(quiet, self.rx.changed())
            .await
            .is_err()
    }
}

fn ingress_names(update: &ProviderUpdate) -> Vec<String> {
    let mut names: Vec<String> = update
        .snapshot
        .ingresses
        .iter()
        .filter_map(|i| i.metadata.name.clone())
        .collect();
    names.sort();
    names
}

fn first_host(update: &ProviderUpdate, name: &str) -> Option<String> {
    let ingress = update
        .snapshot
        .ingresses
        .iter()
        .find(|i| i.metadata.name.as_deref() == Some(name))?;
    let rules = ingress.spec.as_ref()?.rules.as_ref()?;
    rules.first()?.host.clone()
}

#[tokio::test]
async fn missing_path_fails_before_publishing() {
    let (tx, rx) = watch::channel(None);
    let result = run_file_provider(PathBuf::from("/nonexistent/sluice"), DEBOUNCE, tx).await;
    assert!(
        matches!(result, Err(WatchError::NotFound { .. })),
        "{result:?}"
    );
    assert!(rx.borrow().is_none());
}

#[tokio::test]
async fn initial_load_reads_the_tree_and_skips_hidden_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(&dir.path().join("a.yaml"), &ingress("a", "a.test"));
    write(
        &dir.path().join("sub/deeper/b.yml"),
        &ingress("b", "b.test"),
    );
    write(&dir.path().join(".c.yaml.swp"), &ingress("c", "c.test"));
    write(&dir.path().join("d.yaml~"), &ingress("d", "d.test"));
    write(&dir.path().join(".hidden/e.yaml"), &ingress("e", "e.test"));
    write(&dir.path().join("notes.txt"), "not a manifest");
    let mut running = Running::start(dir.path().to_owned()).await;
    let update = running.rx.borrow().clone().expect("first update");
    assert_eq!(ingress_names(&update), ["a", "b"]);
    assert!(update.diagnostics.is_empty(), "{:?}", update.diagnostics);
    assert!(
        running.stays_quiet(Duration::from_millis(400)).await,
        "no change, no update"
    );
}

#[tokio::test]
async fn add_edit_and_delete_publish_new_snapshots() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(&dir.path().join("a.yaml"), &ingress("a", "a.test"));
    let mut running = Running::start(dir.path().to_owned()).await;

    write(&dir.path().join("b.yaml"), &ingress("b", "b.test"));
    assert_eq!(ingress_names(&*running.next().await), ["a", "b"]);

    write(&dir.path().join("a.yaml"), &ingress("a", "edited.test"));
    assert_eq!(
        first_host(&*running.next().await, "a").as_deref(),
        Some("edited.test")
    );

    fs::remove_file(dir.path().join("b.yaml")).expect("remove");
    assert_eq!(ingress_names(&*running.next().await), ["a"]);

    // Same bytes again: nothing changed, nothing published.
    write(&dir.path().join("a.yaml"), &ingress("a", "edited.test"));
    assert!(running.stays_quiet(Duration::from_millis(600)).await);
}

#[tokio::test]
async fn a_burst_of_writes_makes_one_update() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut running = Running::start(dir.path().to_owned()).await;
    let count = Arc::new(AtomicUsize::new(0));
    let mut rx = running.rx.clone();
    let counter = Arc::clone(&count);
    let counting = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    for i in 0..50 {
        write(
            &dir.path().join(format!("burst/{i:02}.yaml")),
            &ingress(&format!("i{i:02}"), "x.test"),
        );
    }
    let update = running.next().await;
    let mut last = update;
    while !running.stays_quiet(Duration::from_millis(800)).await {
        last = running.rx.borrow_and_update().clone().expect("update");
    }
    assert_eq!(ingress_names(&last).len(), 50);
    let updates = count.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&updates),
        "{updates} updates for one burst"
    );
    counting.abort();
}

#[tokio::test]
async fn a_broken_edit_keeps_old_objects_until_fixed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("app.yaml");
    write(&file, &(ingress("a", "a.test") + &ingress("b", "b.test")));
    let mut running = Running::start(dir.path().to_owned()).await;

    let broken = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: b}\nspec:\n  rules: oops\n";
    write(&file, &(ingress("a", "new.test") + broken));
    let update = running.next().await;
    assert_eq!(ingress_names(&update), ["a", "b"]);
    assert_eq!(first_host(&update, "a").as_deref(), Some("new.test"));
    assert_eq!(first_host(&update, "b").as_deref(), Some("b.test"));
    let diagnostic = &update.diagnostics[0];
    assert_eq!(diagnostic.kind, DiagnosticKind::ParseError);
    assert_eq!(diagnostic.object.source.as_deref(), Some("app.yaml#1"));

    write(&file, &ingress("a", "new.test"));
    let update = running.next().await;
    assert_eq!(ingress_names(&update), ["a"]);
    assert!(update.diagnostics.is_empty());
}

#[tokio::test]
async fn a_single_file_survives_an_editor_style_rename() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("app.yaml");
    write(&file, &ingress("a", "a.test"));
    let mut running = Running::start(file.clone()).await;

    write(&dir.path().join("other.yaml"), &ingress("x", "x.test"));
    assert!(
        running.stays_quiet(Duration::from_millis(500)).await,
        "other files are not read"
    );

    let temp = dir.path().join(".app.yaml.tmp");
    write(&temp, &ingress("a", "renamed.test"));
    fs::rename(&temp, &file).expect("rename over");
    let update = running.next().await;
    assert_eq!(first_host(&update, "a").as_deref(), Some("renamed.test"));
    assert_eq!(update.snapshot.ingresses.len(), 1);
}

#[tokio::test]
async fn a_deleted_and_recreated_directory_keeps_working() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("manifests");
    write(&dir.join("a.yaml"), &ingress("a", "a.test"));
    let mut running = Running::start(dir.clone()).await;

    fs::remove_dir_all(&dir).expect("remove dir");
    assert!(
        running.stays_quiet(Duration::from_millis(600)).await,
        "keeps the last objects"
    );
    write(&dir.join("b.yaml"), &ingress("b", "b.test"));
    let update = tokio::time::timeout(Duration::from_secs(3), running.rx.changed()).await;
    assert!(
        matches!(update, Ok(Ok(()))),
        "an update after the directory is back"
    );
    let update = running.rx.borrow().clone().expect("update");
    assert_eq!(ingress_names(&update), ["b"]);
    assert!(!running.task.is_finished());
}

#[tokio::test]
async fn a_quickly_replaced_directory_is_watched_again() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("manifests");
    write(&dir.join("a.yaml"), &ingress("a", "a.test"));
    let mut running = Running::start(dir.clone()).await;

    // Replaced within one debounce: the old watch is dead, the path is not.
    fs::remove_dir_all(&dir).expect("remove dir");
    write(&dir.join("b.yaml"), &ingress("b", "b.test"));
    assert_eq!(ingress_names(&*running.next().await), ["b"]);
    write(&dir.join("c.yaml"), &ingress("c", "c.test"));
    assert_eq!(ingress_names(&*running.next().await), ["b", "c"]);
}

#[tokio::test]
async fn the_provider_stops_when_nobody_listens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Running { rx, task } = Running::start(dir.path().to_owned()).await;
    drop(rx);
    let result = tokio::time::timeout(Duration::from_secs(2), task).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}

/// Load time at 10,000 Ingresses; run with `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn load_time_at_ten_thousand_ingresses() {
    use sluice::watch::ManifestFiles;
    let one = tempfile::tempdir().expect("temp dir");
    let text: String = (0..10_000)
        .map(|i| ingress(&format!("i{i}"), &format!("h{i}.test")))
        .collect();
    write(&one.path().join("all.yaml"), &text);
    let many = tempfile::tempdir().expect("temp dir");
    for f in 0..1_000 {
        let text: String = (0..10)
            .map(|i| ingress(&format!("i{f}-{i}"), "h.test"))
            .collect();
        write(&many.path().join(format!("d{}/f{f}.yaml", f % 10)), &text);
    }
    for (label, dir) in [("one file", one.path()), ("1,000 files", many.path())] {
        let mut files = ManifestFiles::open(dir).expect("open");
        let started = Instant::now();
        files.reload();
        let update = files.view().to_update();
        let full = started.elapsed();
        let started = Instant::now();
        files.reload();
        let unchanged = (files.view(), started.elapsed());
        assert_eq!(update.snapshot.ingresses.len(), 10_000);
        eprintln!(
            "{label}: full load {full:?}, reload with no change {:?}",
            unchanged.1
        );
    }
}
