use super::*;
use crate::router::Severity;
use crate::watch::manifests::parse_manifests;
use crate::watch::object::Object;

fn service(name: &str, port: u16) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{port: {port}}}]\n---\n")
}

const BROKEN: &str =
    "apiVersion: v1\nkind: Service\nmetadata: {name: broken}\nspec: {ports: 7}\n---\n";

fn apply(store: &mut Store, file: &str, text: &str) {
    store.apply(file, parse_manifests(file, text.as_bytes()));
}

/// (identity, source, first port) of every object in the view.
fn objects(store: &Store) -> Vec<(String, String, i32)> {
    let view = store.view();
    let port = |o: &Object| match o {
        Object::Service(s) => s
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .map_or(0, |p| p[0].port),
        _ => 0,
    };
    let rows = view.objects.iter();
    rows.map(|o| (o.key.to_string(), o.source.to_string(), port(&o.object)))
        .collect()
}

fn row(key: &str, source: &str, port: i32) -> (String, String, i32) {
    (key.to_owned(), source.to_owned(), port)
}

#[test]
fn clean_version_replaces_the_old_one() {
    let mut store = Store::new();
    apply(&mut store, "a.yaml", &(service("x", 1) + &service("y", 1)));
    apply(&mut store, "a.yaml", &service("x", 2));
    assert_eq!(objects(&store), [row("Service default/x", "a.yaml#0", 2)]);
    assert!(store.view().diagnostics.is_empty());
}

#[test]
fn broken_version_keeps_old_objects_it_does_not_produce() {
    let mut store = Store::new();
    apply(&mut store, "a.yaml", &(service("x", 1) + &service("y", 1)));
    apply(
        &mut store,
        "a.yaml",
        &(service("x", 2) + BROKEN + &service("z", 2)),
    );
    let expected = [
        row("Service default/x", "a.yaml#0", 2),
        row("Service default/y", "a.yaml#1", 1),
        row("Service default/z", "a.yaml#2", 2),
    ];
    assert_eq!(objects(&store), expected);
    let diagnostics = store.view().diagnostics;
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].object.source.as_deref(), Some("a.yaml#1"));
    // Still broken: the kept objects stay; fixed: only the new version counts.
    apply(&mut store, "a.yaml", BROKEN);
    assert_eq!(objects(&store), expected);
    apply(&mut store, "a.yaml", &service("x", 3));
    assert_eq!(objects(&store), [row("Service default/x", "a.yaml#0", 3)]);
    assert!(store.view().diagnostics.is_empty());
}

#[test]
fn syntax_error_keeps_every_old_object() {
    let mut store = Store::new();
    apply(&mut store, "a.yaml", &(service("x", 1) + &service("y", 1)));
    apply(&mut store, "a.yaml", "apiVersion: v1\nkind: [\n");
    assert_eq!(objects(&store).len(), 2);
    assert_eq!(store.view().diagnostics[0].kind, DiagnosticKind::ParseError);
}

#[test]
fn broken_new_file_loads_its_good_documents() {
    let mut store = Store::new();
    apply(
        &mut store,
        "a.yaml",
        &(BROKEN.to_owned() + &service("x", 1)),
    );
    assert_eq!(objects(&store), [row("Service default/x", "a.yaml#1", 1)]);
}

#[test]
fn removing_a_file_removes_its_objects_and_diagnostics() {
    let mut store = Store::new();
    apply(&mut store, "a.yaml", &(service("x", 1) + BROKEN));
    apply(&mut store, "b.yaml", &service("y", 1));
    assert!(store.remove("a.yaml"));
    assert!(!store.remove("a.yaml"));
    assert_eq!(objects(&store), [row("Service default/y", "b.yaml#0", 1)]);
    assert!(store.view().diagnostics.is_empty());
}

#[test]
fn duplicates_keep_the_first_in_path_and_document_order() {
    let mut store = Store::new();
    apply(&mut store, "b.yaml", &service("x", 2));
    apply(
        &mut store,
        "a.yaml",
        &(service("y", 1) + &service("x", 1) + &service("x", 3)),
    );
    let expected = [
        row("Service default/y", "a.yaml#0", 1),
        row("Service default/x", "a.yaml#1", 1),
    ];
    assert_eq!(objects(&store), expected);
    let diagnostics = store.view().diagnostics;
    let found: Vec<_> = diagnostics
        .iter()
        .map(|d| (d.kind, d.severity, d.object.source.clone()))
        .collect();
    let warning = |s: &str| {
        (
            DiagnosticKind::DuplicateObject,
            Severity::Warning,
            Some(s.to_owned()),
        )
    };
    assert_eq!(found, [warning("a.yaml#2"), warning("b.yaml#0")]);
    assert!(
        diagnostics[1].message.contains("a.yaml#1"),
        "{}",
        diagnostics[1].message
    );
}

#[test]
fn same_name_in_other_namespace_or_kind_is_no_duplicate() {
    let mut store = Store::new();
    let other_ns = "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: other}\n---\n";
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n";
    apply(&mut store, "a.yaml", &(service("x", 1) + other_ns + secret));
    assert_eq!(objects(&store).len(), 3);
    let update = store.view().to_update();
    assert_eq!(
        (
            update.snapshot.services.len(),
            update.snapshot.secrets.len()
        ),
        (2, 1)
    );
    assert!(update.diagnostics.is_empty());
}

#[test]
fn an_unchanged_version_changes_nothing_and_keeps_its_arcs() {
    let mut store = Store::new();
    let text = service("x", 1) + &service("y", 1);
    assert!(store.apply("a.yaml", parse_manifests("a.yaml", text.as_bytes())));
    let before = store.update();
    let generation = store.generation();
    assert!(!store.apply("a.yaml", parse_manifests("a.yaml", text.as_bytes())));
    assert_eq!(store.generation(), generation);
    let edited = service("x", 1) + &service("y", 2);
    assert!(store.apply("a.yaml", parse_manifests("a.yaml", edited.as_bytes())));
    let after = store.update();
    let services = |u: &ProviderUpdate| u.snapshot.services.clone();
    let (old, new) = (services(&before), services(&after));
    assert!(std::sync::Arc::ptr_eq(&old[0], &new[0]), "x is unchanged");
    assert!(!std::sync::Arc::ptr_eq(&old[1], &new[1]), "y changed");
}

#[test]
fn the_fast_update_matches_the_view_with_and_without_duplicates() {
    let mut store = Store::new();
    apply(&mut store, "b.yaml", &service("x", 2));
    apply(&mut store, "a.yaml", &(service("y", 1) + BROKEN));
    let names = |u: &ProviderUpdate| {
        let ports: Vec<_> = u
            .snapshot
            .services
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect();
        (ports, u.diagnostics.clone())
    };
    assert_eq!(names(&store.update()), names(&store.view().to_update()));
    apply(&mut store, "a.yaml", &(service("y", 1) + &service("x", 1)));
    assert_eq!(names(&store.update()), names(&store.view().to_update()));
    assert_eq!(store.update().snapshot.services.len(), 2);
    assert!(store.remove("a.yaml"));
    assert_eq!(names(&store.update()), names(&store.view().to_update()));
    assert_eq!(store.len(), 1);
}
