//! `gmsa-e2e`: end-to-end harnesses: a throwaway Samba Active Directory domain controller on a
//! loopback address, a real Kubernetes cluster (the one `GMSA_E2E_KUBECONFIG`
//! names, for the `#[ignore]`d scenarios scripts/e2e-cluster runs), a fake cluster that runs the
//! same scenarios in CI ([`fake_cluster`]), and the Helm chart as its tests render it ([`chart`]).

pub mod chart;
pub mod cluster;
pub mod dc;
pub mod fake_cluster;
pub mod local_webhook;
pub mod rbac;
