//! The load: the review mix, the shared context that records every review's outcome, and the
//! load workers (fixed rate, then saturation).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gmsa_bench::bodies::{review, Case, Kind};

use crate::client::{Client, Conn};
use crate::lock;

/// A review body split around its UID, the path, and the verdict it must get.
pub struct Template {
    pub label: &'static str,
    pub path: &'static str,
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub allowed: bool,
}

impl Template {
    pub fn new(label: &'static str, case: Case, kind: Kind, sa: &str, allowed: bool) -> Self {
        let body = review(case, kind, sa);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let uid = value["request"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let needle = format!("\"uid\":\"{uid}\"");
        let at = body
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap_or(0);
        let split = at + "\"uid\":\"".len();
        Self {
            label,
            path: kind.path(),
            head: body[..split].to_vec(),
            tail: body[split + uid.len()..].to_vec(),
            allowed,
        }
    }

    pub fn body(&self, uid: &str) -> Vec<u8> {
        [&self.head[..], uid.as_bytes(), &self.tail[..]].concat()
    }
}

pub fn mix() -> Vec<Template> {
    vec![
        Template::new("mutate/no-gmsa", Case::NoGmsa, Kind::Mutate, "webapp", true),
        Template::new(
            "mutate/pod-gmsa",
            Case::PodGmsa,
            Kind::Mutate,
            "webapp",
            true,
        ),
        Template::new(
            "validate/pod-gmsa",
            Case::PodGmsa,
            Kind::Validate,
            "webapp",
            true,
        ),
        Template::new(
            "mutate/3-containers",
            Case::ThreeContainers,
            Kind::Mutate,
            "webapp",
            true,
        ),
        Template::new(
            "validate/3-containers",
            Case::ThreeContainers,
            Kind::Validate,
            "webapp",
            true,
        ),
        Template::new(
            "validate/update",
            Case::Update,
            Kind::Validate,
            "webapp",
            true,
        ),
        Template::new(
            "validate/denied",
            Case::PodGmsa,
            Kind::Validate,
            "intruder",
            false,
        ),
    ]
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Phase {
    Fixed,
    Saturation,
}

pub struct Record {
    pub phase: Phase,
    pub start: Duration,
    pub took: Duration,
    pub ok: bool,
}

#[derive(Default)]
pub struct Log {
    pub records: Vec<Record>,
    /// Errors by (started after SIGTERM, message).
    pub errors: BTreeMap<(bool, String), u64>,
    pub served_by_label: BTreeMap<&'static str, u64>,
}

pub struct Ctx {
    pub client: Client,
    pub templates: Vec<Template>,
    pub t0: Instant,
    pub counter: AtomicU64,
    pub log: Mutex<Log>,
    pub stop_fixed: AtomicBool,
    pub stop_all: AtomicBool,
    pub sigterm_at: Mutex<Option<Duration>>,
}

impl Ctx {
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    pub fn record(&self, phase: Phase, start: Duration, outcome: Result<&'static str, String>) {
        let took = self.now().saturating_sub(start);
        let after_sigterm = lock(&self.sigterm_at).is_some_and(|at| start >= at);
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let ok = outcome.is_ok();
        match outcome {
            Ok(label) => *log.served_by_label.entry(label).or_default() += 1,
            Err(e) => *log.errors.entry((after_sigterm, e)).or_default() += 1,
        }
        log.records.push(Record {
            phase,
            start,
            took,
            ok,
        });
    }

    /// Sends the next review of the mix on `conn`; checks the answer.
    pub async fn one(&self, conn: &mut Conn, phase: Phase) -> bool {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let template = &self.templates[(n as usize) % self.templates.len()];
        let uid = format!("soak-{n:012}");
        let start = self.now();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            conn.post(template.path, template.body(&uid)),
        )
        .await;
        let outcome = match result {
            Err(_) => Err("no answer within 10s".to_string()),
            Ok(Err(e)) => Err(format!("request failed: {}", short(&e))),
            Ok(Ok((status, body))) => {
                check_answer(status, &body, &uid, template.allowed).map(|()| template.label)
            }
        };
        let ok = outcome.is_ok();
        self.record(phase, start, outcome);
        ok
    }
}

pub fn short(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    text.chars().take(160).collect()
}

pub fn check_answer(status: u16, body: &[u8], uid: &str, allowed: bool) -> Result<(), String> {
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    let response = &answer["response"];
    if response["uid"] != uid {
        return Err("UID not echoed".to_string());
    }
    if response["allowed"] != allowed {
        return Err(format!(
            "expected allowed={allowed}, got {}",
            response["status"]["message"]
        ));
    }
    Ok(())
}

/// A load client: keeps one connection (reopened after a failure) and sends reviews, at
/// `interval` (fixed rate) or back to back (saturation).
pub async fn load_worker(ctx: Arc<Ctx>, id: usize, phase: Phase, interval: Option<Duration>) {
    let h2 = id % 2 == 1;
    let mut conn: Option<Conn> = None;
    let started = Instant::now();
    let mut sent: u32 = 0;
    loop {
        let stop = match phase {
            Phase::Fixed => ctx.stop_fixed.load(Ordering::Relaxed),
            Phase::Saturation => ctx.stop_all.load(Ordering::Relaxed),
        };
        if stop {
            break;
        }
        if let Some(interval) = interval {
            // Spread the workers over the interval; no catching up after a slow answer.
            let due = started + interval * sent + interval * (id as u32) / 16;
            tokio::time::sleep_until(due.into()).await;
        }
        sent += 1;
        if conn.is_none() {
            let start = ctx.now();
            match ctx.client.connect(h2).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    ctx.record(phase, start, Err(format!("connect: {}", short(&e))));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            if !ctx.one(c, phase).await {
                conn = None;
            }
        }
    }
}

pub fn start_saturation(ctx: &Arc<Ctx>, workers: usize) {
    ctx.stop_fixed.store(true, Ordering::Relaxed);
    for id in 0..workers {
        tokio::spawn(load_worker(ctx.clone(), id, Phase::Saturation, None));
    }
}
