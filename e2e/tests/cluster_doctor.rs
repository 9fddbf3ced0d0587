//! `gmsa doctor` against a real cluster (`GMSA_E2E_KUBECONFIG`; see `gmsa_e2e::cluster`):
//! the scenarios of [`doctor_scenarios`], `#[ignore]`d in the normal run and run by
//! scripts/e2e-cluster; run without a cluster, they fail. CI runs the same scenarios against
//! the harness's fake cluster (`fake_cluster_doctor.rs`) and the broken set-ups a namespace
//! cannot build against testkit's fake (`doctor/tests/fake_cluster.rs`).

mod doctor_scenarios;

use doctor_scenarios::doctor_scenarios;

doctor_scenarios!(before: (), #[ignore = "real cluster: scripts/e2e-cluster"]);
