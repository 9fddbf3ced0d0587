//! `gmsa doctor`'s cluster scenarios ([`doctor_scenarios`]) against the harness's fake cluster
//! ([`gmsa_e2e::fake_cluster`]), in CI: the same code `cluster_doctor.rs` runs against a real
//! cluster, doctor reading the fake as it reads kube-apiserver and the fake calling the webhook
//! over TLS as kube-apiserver does.

mod doctor_scenarios;

use doctor_scenarios::doctor_scenarios;
use gmsa_e2e::fake_cluster::FakeCluster;

doctor_scenarios!(before: FakeCluster::for_this_process());
