//! `GMSACredentialSpec` through a real `kube::Client` against the fake API server answering
//! like the captured kube-apiserver 1.32: get, list, watch/reflector and server-side apply.

use std::time::Duration;

use axum::extract::RawQuery;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use gmsa_crd::{CredSpec, GMSACredentialSpec};
use gmsa_testkit::{apply_recorder, fixture, fixture_text, json, FakeApiServer};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;

const BASE: &str = "/apis/windows.k8s.io/v1/gmsacredentialspecs";

#[tokio::test]
async fn get_reads_the_captured_object_with_its_raw_credspec() {
    let router = Router::new().route(
        &format!("{BASE}/webapp01"),
        get(|| async { json(&fixture("k8s-1.32/api/gmsacredentialspec-get.json")) }),
    );
    let server = FakeApiServer::start(router).await;
    let api: Api<GMSACredentialSpec> = Api::all(server.client());
    let spec = api.get("webapp01").await.expect("GET through kube");
    assert_eq!(spec.name(), "webapp01");
    let captured = fixture("k8s-1.32/api/gmsacredentialspec-get.json");
    assert_eq!(
        spec.credspec.as_ref(),
        Some(&captured["credspec"]),
        "credspec verbatim"
    );
    let typed: CredSpec = spec.typed().expect("typed view");
    assert_eq!(typed.account_name(), Some("WebApp01"));
    assert_eq!(server.count("GET", &format!("{BASE}/webapp01")), 1);
}

#[tokio::test]
async fn a_v1alpha1_object_reads_the_same() {
    let v1alpha1: GMSACredentialSpec =
        serde_json::from_value(fixture("k8s-1.28/api/gmsacredentialspec-get-v1alpha1.json"))
            .expect("v1alpha1 parses");
    let v1: GMSACredentialSpec =
        serde_json::from_value(fixture("k8s-1.28/api/gmsacredentialspec-get.json"))
            .expect("v1 parses");
    assert_eq!(v1alpha1.credspec, v1.credspec);
}

#[tokio::test]
async fn reflector_follows_list_then_watch_events() {
    let router = Router::new().route(
        BASE,
        get(|RawQuery(query): RawQuery| async move {
            if query.unwrap_or_default().contains("watch=true") {
                let body = fixture_text("k8s-1.32/api/gmsacredentialspecs-watch.jsonl");
                ([("content-type", "application/json")], body).into_response()
            } else {
                json(&fixture("k8s-1.32/api/gmsacredentialspecs-list.json"))
            }
        }),
    );
    let server = FakeApiServer::start(router).await;
    let api: Api<GMSACredentialSpec> = Api::all(server.client());
    let (store, writer) = reflector::store();
    let mut stream = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .boxed();
    let mut seen_both = false;
    let deleted = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = stream.next().await {
            match event.expect("watch event") {
                watcher::Event::Apply(obj) if obj.name() == "webapp02" => {
                    seen_both = store.state().len() == 2;
                }
                watcher::Event::Delete(obj) => return obj,
                _ => {}
            }
        }
        panic!("stream ended before the DELETED event");
    })
    .await
    .expect("events within 10 s");
    assert_eq!(deleted.name(), "webapp02");
    assert!(
        seen_both,
        "after ADDED the store held webapp01 and webapp02"
    );
    let names: Vec<String> = store.state().iter().map(|s| s.name().to_string()).collect();
    assert_eq!(names, ["webapp01"]);
}

#[tokio::test]
async fn apply_sends_a_server_side_apply_patch_as_field_manager_gmsa() {
    let (router, seen) = apply_recorder();
    let server = FakeApiServer::start(router).await;
    let captured_spec = fixture("k8s-1.32/api/gmsacredentialspec-get.json");
    let typed = CredSpec::from_value(&captured_spec["credspec"]).expect("typed");
    let spec = GMSACredentialSpec::new("webapp01", &typed);

    let stored = gmsa_crd::apply(server.client(), &spec, true)
        .await
        .expect("apply");
    assert_eq!(stored.metadata.resource_version.as_deref(), Some("300"));
    assert_eq!(stored.credspec, spec.credspec);

    let seen = seen.lock().expect("lock").clone();
    let request = seen.first().expect("a PATCH arrived");
    assert_eq!(request.content_type, "application/apply-patch+yaml");
    let query: Vec<&str> = request.query.split('&').collect();
    assert!(query.contains(&"fieldManager=gmsa"), "{query:?}");
    assert!(query.contains(&"force=true"), "{query:?}");
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(body["apiVersion"], "windows.k8s.io/v1");
    assert_eq!(body["kind"], "GMSACredentialSpec");
    assert_eq!(body["metadata"]["name"], "webapp01");
    assert_eq!(body["credspec"], captured_spec["credspec"]);
    assert_eq!(server.count("PATCH", &format!("{BASE}/webapp01")), 1);
}

#[tokio::test]
async fn apply_without_force_does_not_ask_for_force() {
    let (router, seen) = apply_recorder();
    let server = FakeApiServer::start(router).await;
    let spec = GMSACredentialSpec::new("webapp01", &CredSpec::default());
    gmsa_crd::apply(server.client(), &spec, false)
        .await
        .expect("apply");
    let seen = seen.lock().expect("lock").clone();
    let query = &seen.first().expect("a PATCH arrived").query;
    assert!(query.contains("fieldManager=gmsa"), "{query}");
    assert!(!query.contains("force"), "{query}");
}
