//! [`KubeSpecStore`]: credential specs kept in memory by a watch of `gmsacredentialspecs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use gmsa_crd::GMSACredentialSpec;
use kube::runtime::watcher::{self, Event};
use kube::Api;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{api_status, describe, is_object_name};
use crate::lookup::{Freshness, LookupError, SpecLookup, SpecStore};

/// Settings of [`KubeSpecStore`].
#[derive(Clone, Debug)]
pub struct SpecStoreConfig {
    /// Deadline of one live GET (answered [`LookupError::Unavailable`] beyond it). Keep it
    /// well below the API server's webhook timeout (10 s by default).
    pub timeout: Duration,
    /// How long the watch may stay broken before the cache stops answering: past it,
    /// `get(name, Cached)` reads live (coalesced) instead of from memory, so a spec changed or
    /// deleted during a lasting outage is not served beyond this bound.
    pub max_staleness: Duration,
}

/// Default of [`SpecStoreConfig::max_staleness`] (and `--max-cache-staleness`): 30 s. Longer
/// than a blip (reconnects after 0.8 to 6.4 s of backoff never switch to live reads), short
/// enough that a spec deleted while the watch is down stops being inlined within half a
/// minute (docs/reliability.md).
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(30);

impl Default for SpecStoreConfig {
    /// A 3 s live GET deadline, [`DEFAULT_MAX_STALENESS`].
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            max_staleness: DEFAULT_MAX_STALENESS,
        }
    }
}

/// First wait before re-listing after a list/watch error; doubles up to [`BACKOFF_MAX`] and
/// starts over once a list completes.
const BACKOFF_START: Duration = Duration::from_millis(800);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Whether a cache whose watch has been failing since `broken_since` is past `bound` at `now`
/// (a healthy watch, `None`, keeps the cache current however quiet the cluster is).
pub fn is_stale(broken_since: Option<Instant>, now: Instant, bound: Duration) -> bool {
    broken_since.is_some_and(|since| now.saturating_duration_since(since) > bound)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

type LiveFuture = Shared<BoxFuture<'static, Result<SpecLookup, LookupError>>>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

#[derive(Clone, Default)]
struct Metrics {
    live_gets: Family<ResultLabel, Counter>,
    watch_events: Family<EventLabel, Counter>,
    watch_restarts: Counter,
    watch_errors: Counter,
    last_event: Gauge,
    broken_since: Gauge,
    stale_reads: Counter,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "gmsa_webhook_spec_live_gets",
            "Live GETs of gmsacredentialspecs (cache misses, re-checks) by result: found, not_found, no_credspec, error",
            m.live_gets.clone(),
        );
        registry.register(
            "gmsa_webhook_spec_watch_events",
            "Watch events applied to the credspec cache by event: applied, deleted, listed (one per object of a (re)list)",
            m.watch_events.clone(),
        );
        registry.register(
            "gmsa_webhook_spec_watch_restarts",
            "Full re-lists of gmsacredentialspecs after the first (410 Gone, errors)",
            m.watch_restarts.clone(),
        );
        registry.register(
            "gmsa_webhook_spec_watch_errors",
            "Errors of the gmsacredentialspecs list/watch (each followed by a backoff and a retry)",
            m.watch_errors.clone(),
        );
        registry.register(
            "gmsa_webhook_spec_watch_last_event_timestamp_seconds",
            "Unix time of the last successful list/watch event (a completed list, an added, changed or deleted spec); its age is time() minus this",
            m.last_event.clone(),
        );
        registry.register(
            "gmsa_webhook_spec_watch_broken_since_timestamp_seconds",
            "Unix time since which the gmsacredentialspecs watch has been failing, 0 while it is healthy",
            m.broken_since.clone(),
        );
        registry.register(
            "gmsa_webhook_spec_stale_reads",
            "Cached lookups read live because the watch has been broken for longer than --max-cache-staleness",
            m.stale_reads.clone(),
        );
        m
    }

    fn live(&self, result: &'static str) {
        self.live_gets.get_or_create(&ResultLabel { result }).inc();
    }

    fn event(&self, event: &'static str) {
        self.watch_events.get_or_create(&EventLabel { event }).inc();
    }
}

#[derive(Default)]
struct SyncState {
    synced: bool,
    last_error: Option<String>,
    /// Since when the watch has been failing (the first error after the last success).
    broken_since: Option<Instant>,
}

/// Credential specs from a watch of `gmsacredentialspecs` (cluster scope), kept in memory as
/// name → [`SpecLookup`] built once per watch event.
///
/// - `get(name, Cached)`: from memory, never I/O. A miss is [`SpecLookup::NotFound`] once the
///   initial list has synced; before that it is [`LookupError::Unavailable`] saying the cache
///   has not synced (callers then ask [`Freshness::Live`], so the webhook still works, one GET
///   per lookup, while the watch cannot start, e.g. without `list`/`watch` permission).
/// - `get(name, Live)`: one GET with the configured deadline; concurrent live GETs of the same
///   name share one API call. Live answers do not modify the cache (the watch stays the only
///   writer, so an older event can never overwrite a newer GET or the reverse).
/// - `ready()`: `Ok` once the initial list has synced; before that the error says why (the
///   last list/watch error, e.g. a missing permission).
///
/// After an error (or `410 Gone`) the watch starts over with a full list after a backoff
/// (0.8 s doubling to 30 s, reset once a list completes); the re-list replaces the map
/// atomically when complete, and the previous contents keep answering meanwhile — for at most
/// [`SpecStoreConfig::max_staleness`] from the first error: past it, cached lookups read live
/// until a list completes again. Starting over (rather than resuming silently) is what makes
/// recovery observable: a resumed watch on a quiet cluster delivers nothing to prove it works.
pub struct KubeSpecStore {
    api: Api<GMSACredentialSpec>,
    config: SpecStoreConfig,
    specs: RwLock<HashMap<String, SpecLookup>>,
    state: Mutex<SyncState>,
    inflight: Arc<Mutex<HashMap<String, LiveFuture>>>,
    metrics: Metrics,
    /// Whether the switch to live reads has been logged in this outage.
    stale_logged: AtomicBool,
}

impl KubeSpecStore {
    /// Starts watching `gmsacredentialspecs` with `client` and registers the store's metrics
    /// (`gmsa_webhook_spec_*`) in `registry`. Returns the store and the spawned watch task,
    /// which runs until aborted (abort it on shutdown). Must be called inside a tokio runtime.
    pub fn start(
        client: kube::Client,
        config: SpecStoreConfig,
        registry: &mut Registry,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let store = Arc::new(Self {
            api: Api::all(client),
            config,
            specs: RwLock::default(),
            state: Mutex::default(),
            inflight: Arc::default(),
            metrics: Metrics::register(registry),
            stale_logged: AtomicBool::new(false),
        });
        let task = tokio::spawn(store.clone().run_watch());
        (store, task)
    }

    /// The last list/watch error, if no list or event has succeeded since.
    pub fn watch_error(&self) -> Option<String> {
        self.lock_state().last_error.clone()
    }

    /// A successful list/watch event: the cache is current again.
    fn watch_succeeded(&self) {
        self.metrics.last_event.set(unix_now());
        let mut state = self.lock_state();
        let was_broken = state.broken_since.take().is_some();
        state.last_error = None;
        drop(state);
        if was_broken {
            self.metrics.broken_since.set(0);
            self.stale_logged.store(false, Ordering::Relaxed);
            tracing::info!("credspec watch recovered");
        }
    }

    /// A list/watch error: the cache is current as of now at best.
    fn broken(&self, text: String) {
        let mut state = self.lock_state();
        if state.broken_since.is_none() {
            state.broken_since = Some(Instant::now());
            self.metrics.broken_since.set(unix_now());
        }
        state.last_error = Some(text);
    }

    /// Why cached answers are not used now (the watch broken past the bound), if they are not.
    fn stale(&self) -> Option<String> {
        let state = self.lock_state();
        let since = state.broken_since?;
        if !is_stale(Some(since), Instant::now(), self.config.max_staleness) {
            return None;
        }
        Some(format!(
            "the credspec watch has been failing for {:.0?} (more than --max-cache-staleness \
             {:?}): credspecs are read live from the API server until it recovers; last error: {}",
            since.elapsed(),
            self.config.max_staleness,
            state.last_error.as_deref().unwrap_or("unknown")
        ))
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run_watch(self: Arc<Self>) {
        let mut backoff = BACKOFF_START;
        let mut lists = 0u64;
        loop {
            let listed = self.watch_until_error(&mut lists).await;
            if listed {
                backoff = BACKOFF_START;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One watcher from a fresh list until its first error; whether a list completed.
    async fn watch_until_error(&self, lists: &mut u64) -> bool {
        let stream = watcher::watcher(self.api.clone(), watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        let mut relist: Option<HashMap<String, SpecLookup>> = None;
        let mut listed = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(Event::Init) => {
                    *lists += 1;
                    if *lists > 1 {
                        self.metrics.watch_restarts.inc();
                    }
                    relist = Some(HashMap::new());
                }
                Ok(Event::InitApply(spec)) => {
                    self.metrics.event("listed");
                    if let Some(map) = relist.as_mut() {
                        map.insert(spec.name().to_string(), lookup_of(&spec));
                    }
                }
                Ok(Event::InitDone) => {
                    let map = relist.take().unwrap_or_default();
                    let n = map.len();
                    *self.specs.write().unwrap_or_else(|p| p.into_inner()) = map;
                    self.lock_state().synced = true;
                    self.watch_succeeded();
                    listed = true;
                    tracing::info!(specs = n, "credspec cache synced from the API server");
                }
                Ok(Event::Apply(spec)) => {
                    self.metrics.event("applied");
                    let lookup = lookup_of(&spec);
                    tracing::debug!(spec = spec.name(), "credspec added or changed");
                    self.specs
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(spec.name().to_string(), lookup);
                    self.watch_succeeded();
                }
                Ok(Event::Delete(spec)) => {
                    self.metrics.event("deleted");
                    tracing::debug!(spec = spec.name(), "credspec deleted");
                    self.specs
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(spec.name());
                    self.watch_succeeded();
                }
                Err(e) => {
                    self.metrics.watch_errors.inc();
                    let text = describe_watch_error(&e);
                    if is_gone(&e) {
                        tracing::info!("{text}");
                    } else {
                        tracing::warn!("{text}; re-listing after a backoff");
                    }
                    self.broken(text);
                    return listed;
                }
            }
        }
        listed
    }

    /// One live GET, shared by every concurrent caller asking for the same name.
    ///
    /// The GET runs in a task of its own, not inside the callers' futures: if every caller is
    /// dropped (the API server gave up on the review), the GET still ends within its deadline
    /// and removes its entry, so a later caller never joins a future whose deadline has already
    /// passed (which would answer an instant, spurious 503).
    async fn live(&self, name: &str) -> Result<SpecLookup, LookupError> {
        if !is_object_name(name) {
            // No object can have this name; and kube does not escape names in URLs, so e.g.
            // `a/../../x` must never become a request path.
            self.metrics.live("not_found");
            return Ok(SpecLookup::NotFound);
        }
        let fut = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match inflight.get(name) {
                Some(f) => f.clone(),
                None => {
                    let api = self.api.clone();
                    let timeout = self.config.timeout;
                    let metrics = self.metrics.clone();
                    let registry = Arc::clone(&self.inflight);
                    let key = name.to_string();
                    let task = tokio::spawn(async move {
                        let result = fetch(&api, &key, timeout).await;
                        metrics.live(match &result {
                            Ok(SpecLookup::Found(_)) => "found",
                            Ok(SpecLookup::NotFound) => "not_found",
                            Ok(SpecLookup::NoCredSpec) => "no_credspec",
                            Err(_) => "error",
                        });
                        registry
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&key);
                        result
                    });
                    let what = name.to_string();
                    let f = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(LookupError::Unavailable(format!(
                                "GET gmsacredentialspecs \"{what}\" was interrupted: {e}"
                            )))
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(name.to_string(), f.clone());
                    f
                }
            }
        };
        fut.await
    }
}

async fn fetch(
    api: &Api<GMSACredentialSpec>,
    name: &str,
    timeout: Duration,
) -> Result<SpecLookup, LookupError> {
    match tokio::time::timeout(timeout, api.get_opt(name)).await {
        Ok(Ok(Some(spec))) => Ok(lookup_of(&spec)),
        Ok(Ok(None)) => Ok(SpecLookup::NotFound),
        Ok(Err(e)) if api_status(&e) == Some(403) => Err(LookupError::Forbidden(format!(
            "get gmsacredentialspecs \"{name}\" (grant its service account `get` on \
             gmsacredentialspecs.windows.k8s.io): {}",
            describe(&e)
        ))),
        Ok(Err(e)) => Err(LookupError::Unavailable(format!(
            "GET gmsacredentialspecs \"{name}\" failed: {}",
            describe(&e)
        ))),
        Err(_) => Err(LookupError::Unavailable(format!(
            "GET gmsacredentialspecs \"{name}\" did not answer within {timeout:?}"
        ))),
    }
}

/// What admission needs from one object: its `credspec`, or that it has none.
fn lookup_of(spec: &GMSACredentialSpec) -> SpecLookup {
    SpecLookup::of_credspec(spec.credspec.as_ref())
}

fn watch_status(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => api_status(e),
        watcher::Error::WatchError(status) => Some(status.code),
        watcher::Error::NoResourceVersion => None,
    }
}

fn is_gone(e: &watcher::Error) -> bool {
    watch_status(e) == Some(410)
}

/// The text `ready()` and the logs show for a list/watch error.
fn describe_watch_error(e: &watcher::Error) -> String {
    let detail = match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => describe(e),
        watcher::Error::WatchError(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        watcher::Error::NoResourceVersion => e.to_string(),
    };
    let what = match e {
        watcher::Error::InitialListFailed(_) => "list",
        _ => "watch",
    };
    match watch_status(e) {
        Some(403) => format!(
            "{what} failed: 403 forbidden: grant list/watch on gmsacredentialspecs.windows.k8s.io \
             to the webhook's service account ({detail})"
        ),
        Some(410) => format!("watch expired (410 Gone), re-listing: {detail}"),
        _ => format!("{what} of gmsacredentialspecs failed: {detail}"),
    }
}

#[async_trait]
impl SpecStore for KubeSpecStore {
    async fn get(&self, name: &str, freshness: Freshness) -> Result<SpecLookup, LookupError> {
        if freshness == Freshness::Cached {
            if let Some(why) = self.stale() {
                self.metrics.stale_reads.inc();
                if !self.stale_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!("{why}");
                }
                return self.live(name).await;
            }
            if let Some(found) = self
                .specs
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
            {
                return Ok(found.clone());
            }
            let state = self.lock_state();
            if state.synced {
                return Ok(SpecLookup::NotFound);
            }
            return Err(LookupError::Unavailable(format!(
                "credspec cache has not synced yet ({}); credspec \"{name}\" needs a live read",
                state
                    .last_error
                    .as_deref()
                    .unwrap_or("initial list in progress")
            )));
        }
        self.live(name).await
    }

    fn ready(&self) -> Result<(), String> {
        let state = self.lock_state();
        if state.synced {
            return Ok(());
        }
        Err(format!(
            "credspec cache has not synced yet: {}",
            state
                .last_error
                .as_deref()
                .unwrap_or("the initial list of gmsacredentialspecs is in progress")
        ))
    }

    fn degraded(&self) -> Option<String> {
        self.stale()
    }

    fn len(&self) -> usize {
        self.specs.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::CredSpecEntry;
    use serde_json::json;

    fn spec(credspec: Option<serde_json::Value>) -> GMSACredentialSpec {
        GMSACredentialSpec {
            credspec,
            ..Default::default()
        }
    }

    #[test]
    fn lookup_of_maps_missing_and_empty_credspecs_to_no_credspec() {
        let cases = [
            (None, SpecLookup::NoCredSpec),
            (Some(json!(null)), SpecLookup::NoCredSpec),
            (Some(json!({})), SpecLookup::NoCredSpec),
            (Some(json!("")), SpecLookup::NoCredSpec),
            (
                Some(json!({"b": 1, "a": 2})),
                SpecLookup::Found(CredSpecEntry::new(json!({"a": 2, "b": 1}))),
            ),
        ];
        for (credspec, want) in cases {
            assert_eq!(lookup_of(&spec(credspec.clone())), want, "{credspec:?}");
        }
        match lookup_of(&spec(Some(json!({"b": 1, "a": 2})))) {
            SpecLookup::Found(e) => assert_eq!(&*e.json, r#"{"a":2,"b":1}"#),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn staleness_is_how_long_the_watch_has_been_broken_against_the_bound() {
        let now = Instant::now();
        let bound = Duration::from_secs(30);
        let ago = |s: u64| now.checked_sub(Duration::from_secs(s));
        let cases = [
            (None, false),     // healthy, however long since the last event
            (ago(0), false),   // just broke
            (ago(30), false),  // at the bound
            (ago(31), true),   // past it
            (ago(3600), true), // long outage
            (Some(now + Duration::from_secs(5)), false), // clock order: never negative
        ];
        for (since, want) in cases {
            assert_eq!(is_stale(since, now, bound), want, "{since:?}");
        }
        assert!(!is_stale(ago(31), now, Duration::from_secs(60)));
    }

    #[test]
    fn watch_errors_name_the_missing_permission() {
        let status = kube::core::Status {
            code: 403,
            reason: "Forbidden".into(),
            message: "cannot list".into(),
            ..Default::default()
        };
        let e = watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status.clone())));
        let text = describe_watch_error(&e);
        assert!(
            text.starts_with("list failed: 403 forbidden: grant list/watch on gmsacredentialspecs"),
            "{text}"
        );
        let gone = watcher::Error::WatchError(Box::new(kube::core::Status {
            code: 410,
            reason: "Expired".into(),
            message: "too old resource version: 1 (212)".into(),
            ..Default::default()
        }));
        assert!(is_gone(&gone));
        assert!(describe_watch_error(&gone).contains("410 Gone"));
        assert!(!is_gone(&e));
    }
}
