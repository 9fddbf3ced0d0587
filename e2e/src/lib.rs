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

/// Declares, in a test file, one `#[tokio::test]` per scenario `$module::$name(test: &str)`
/// (an async function taking the test's name): each test has the runtime arguments and the
/// attributes given (e.g. `#[ignore = "real cluster: scripts/e2e-cluster"]`), evaluates
/// `before` first (e.g. choosing the fake cluster, `gmsa_e2e::fake_cluster`), and is named
/// after its scenario. So the same scenario runs against a real cluster in one file and
/// against the fake in another:
///
/// ```text
/// gmsa_e2e::scenario_tests!([flavor = "current_thread"] scenarios (()) [#[ignore = "…"]] one, two);
/// ```
#[macro_export]
macro_rules! scenario_tests {
    (@one [$($runtime:tt)*] $module:ident ($before:expr) [$($attr:tt)*] $name:ident) => {
        #[tokio::test($($runtime)*)]
        $($attr)*
        async fn $name() {
            let _ = $before;
            $module::$name(stringify!($name)).await
        }
    };
    ($runtime:tt $module:ident $before:tt $attrs:tt $($name:ident),* $(,)?) => {$(
        $crate::scenario_tests!(@one $runtime $module $before $attrs $name);
    )*};
}
