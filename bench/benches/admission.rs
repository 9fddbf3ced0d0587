//! Criterion micro-benchmarks of one review through the webhook's decision code, without
//! network or TLS: `Admitter::handle` (wire format in, scan, rules, wire format out) over
//! in-memory lookups that answer at once, for the benchmark's four pods on both paths.
//!
//! `cargo bench -p gmsa-bench --bench admission` (not part of the tests).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gmsa_bench::bodies::{credspec_for, review, Case, Kind, SPEC_NAMES};
use gmsa_webhook::admission::Hook;
use gmsa_webhook::admission_review::{Admitter, Options, Verdict};
use gmsa_webhook::lookup::{
    Authorizer, CredSpecEntry, Freshness, LookupError, SpecLookup, SpecStore, UseDecision,
};

/// Specs held in a map: what the watch cache answers in steady state.
struct MemorySpecs(HashMap<String, CredSpecEntry>);

#[async_trait]
impl SpecStore for MemorySpecs {
    async fn get(&self, name: &str, _freshness: Freshness) -> Result<SpecLookup, LookupError> {
        Ok(match self.0.get(name) {
            Some(entry) => SpecLookup::Found(entry.clone()),
            None => SpecLookup::NotFound,
        })
    }

    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Every service account may use every spec: what the authorization cache answers when warm.
struct AllowAll;

#[async_trait]
impl Authorizer for AllowAll {
    async fn may_use(&self, _ns: &str, _sa: &str, _spec: &str) -> Result<UseDecision, LookupError> {
        Ok(UseDecision {
            allowed: true,
            reason: None,
        })
    }
}

fn admission(c: &mut Criterion) {
    let specs = SPEC_NAMES
        .iter()
        .map(|name| (name.to_string(), CredSpecEntry::new(credspec_for(name))))
        .collect();
    let admitter = Admitter::new(
        Arc::new(MemorySpecs(specs)),
        Arc::new(AllowAll),
        Options::default(),
    );
    let mut group = c.benchmark_group("handle");
    for case in Case::ALL {
        for kind in Kind::ALL {
            let body = review(case, kind, "webapp");
            let review_kind = match kind {
                Kind::Mutate => Hook::Mutate,
                Kind::Validate => Hook::Validate,
            };
            // Measure the path a real cluster takes, not a denial.
            let handled = futures::executor::block_on(admitter.handle(review_kind, &body));
            assert!(
                !matches!(handled.verdict, Verdict::Denied { .. }),
                "{} {}: denied: {}",
                case.label(),
                kind.label(),
                String::from_utf8_lossy(&handled.body)
            );
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_function(format!("{}/{}", case.label(), kind.label()), |b| {
                b.iter(|| {
                    futures::executor::block_on(admitter.handle(review_kind, black_box(&body)))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, admission);
criterion_main!(benches);
