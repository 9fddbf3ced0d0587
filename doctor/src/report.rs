//! What doctor found: checks in groups, each with a status, what was seen and the fix; the
//! exit code; text and JSON renderings. Pure.

use std::fmt::Write as _;

use serde::Serialize;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As it should be.
    Ok,
    /// Works, but something is risky or about to break.
    Warn,
    /// Broken: a gMSA pod will not work (or not safely) until it is fixed.
    Fail,
    /// Not checked: doctor lacked a right or an input (the message says which); never a pass.
    Skip,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Skip => "skip",
        }
    }
}

/// The groups, in the order they are checked and printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    /// The API server: reachable, version, matchConditions.
    Cluster,
    /// The GMSACredentialSpec CRD.
    Crd,
    /// The webhook configurations, the namespaces they cover, the service and endpoints.
    Webhooks,
    /// caBundle and the serving certificate.
    Certificates,
    /// A server-side dry-run create of a probe pod: what a real pod meets.
    Probe,
    /// The `use` grant of the pod's service account.
    Rbac,
    /// The credential spec, the domain and the Windows nodes.
    Spec,
    /// The webhook's Deployment and pods.
    Webhook,
}

impl Group {
    /// The heading printed above the group.
    pub fn title(self) -> &'static str {
        match self {
            Self::Cluster => "Cluster",
            Self::Crd => "GMSACredentialSpec CRD",
            Self::Webhooks => "Webhook configurations",
            Self::Certificates => "Certificates",
            Self::Probe => "The real path (server-side dry run)",
            Self::Rbac => "RBAC",
            Self::Spec => "Credential spec",
            Self::Webhook => "The webhook itself",
        }
    }
}

/// One check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier, e.g. `crd.installed` (for scripts: never renamed).
    pub id: &'static str,
    /// Its group.
    pub group: Group,
    /// The outcome.
    pub status: Status,
    /// What was seen, in one sentence.
    pub message: String,
    /// Further facts (one line each), e.g. each excluded namespace.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The exact fix (a command or a manifest), for `warn` and `fail`; for `skip`, how to let
    /// doctor run the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A check with no details and no fix.
    pub fn new(id: &'static str, group: Group, status: Status, message: impl Into<String>) -> Self {
        Self {
            id,
            group,
            status,
            message: message.into(),
            details: Vec::new(),
            fix: None,
        }
    }

    /// Sets the fix.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// Adds detail lines.
    pub fn details(mut self, details: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(details);
        self
    }
}

/// Every check doctor ran, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

/// Counts of each status, for the summary line and `-o json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `ok` checks.
    pub ok: usize,
    /// `warn` checks.
    pub warn: usize,
    /// `fail` checks.
    pub fail: usize,
    /// `skip` checks.
    pub skip: usize,
}

impl Report {
    /// The check of this id, if it ran.
    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// Counts per status.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.checks {
            match c.status {
                Status::Ok => s.ok += 1,
                Status::Warn => s.warn += 1,
                Status::Fail => s.fail += 1,
                Status::Skip => s.skip += 1,
            }
        }
        s
    }

    /// The process exit code: 0 when nothing failed, 1 when any check failed. (2, doctor
    /// could not run at all, is the binary's.)
    pub fn exit_code(&self) -> u8 {
        u8::from(self.summary().fail > 0)
    }

    /// The stable JSON document of `-o json`: `{"checks": [...], "summary": {...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "checks": self.checks,
            "summary": self.summary(),
        })
    }

    /// The text rendering: a heading per group, a line per check, then its details and fix.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut group = None;
        for c in &self.checks {
            if group != Some(c.group) {
                if group.is_some() {
                    out.push('\n');
                }
                let _ = writeln!(out, "{}", c.group.title());
                let _ = writeln!(out, "{}", "-".repeat(c.group.title().len()));
                group = Some(c.group);
            }
            let _ = writeln!(out, "[{:>4}] {}: {}", c.status.mark(), c.id, c.message);
            for d in &c.details {
                let _ = writeln!(out, "         {d}");
            }
            if let Some(fix) = &c.fix {
                let label = if c.status == Status::Skip {
                    "to check"
                } else {
                    "fix"
                };
                if fix.contains('\n') {
                    // A command block or a manifest: flush left, so it can be copied as is
                    // (heredoc terminators and `---` must start their line).
                    let _ = writeln!(out, "         {label}:");
                    for line in fix.lines() {
                        let _ = writeln!(out, "{line}");
                    }
                } else {
                    let _ = writeln!(out, "         {label}: {fix}");
                }
            }
        }
        let s = self.summary();
        let _ = writeln!(
            out,
            "\n{} ok, {} warn, {} fail, {} skipped: {}",
            s.ok,
            s.warn,
            s.fail,
            s.skip,
            if s.fail > 0 {
                "a gMSA pod will not work until each FAIL is fixed"
            } else if s.warn > 0 {
                "gMSA pods should work; read each warn"
            } else {
                "gMSA pods should work"
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            checks: vec![
                Check::new("crd.installed", Group::Crd, Status::Ok, "established"),
                Check::new(
                    "webhook.service",
                    Group::Webhooks,
                    Status::Fail,
                    "no endpoints",
                )
                .details(["Service gmsa/gmsa".to_string()])
                .fix("kubectl -n gmsa rollout status deploy/gmsa\nkubectl -n gmsa get pods"),
                Check::new("rbac.use", Group::Rbac, Status::Skip, "no right").fix("grant it"),
            ],
        }
    }

    #[test]
    fn exit_code_and_summary() {
        let r = report();
        assert_eq!(r.exit_code(), 1);
        assert_eq!(
            r.summary(),
            Summary {
                ok: 1,
                warn: 0,
                fail: 1,
                skip: 1
            }
        );
        let ok = Report {
            checks: vec![
                Check::new("a", Group::Crd, Status::Warn, "x"),
                Check::new("b", Group::Crd, Status::Skip, "x"),
            ],
        };
        assert_eq!(ok.exit_code(), 0, "warn and skip do not fail");
    }

    #[test]
    fn text_groups_checks_and_prints_fixes() {
        let text = report().to_text();
        assert!(text.starts_with("GMSACredentialSpec CRD\n"), "{text}");
        assert!(text.contains("[  ok] crd.installed: established"), "{text}");
        assert!(text.contains("\nWebhook configurations\n"), "{text}");
        assert!(text.contains("[FAIL] webhook.service: no endpoints\n         Service gmsa/gmsa\n         fix:\nkubectl -n gmsa rollout status deploy/gmsa\nkubectl -n gmsa get pods\n"), "{text}");
        assert!(
            text.contains("[skip] rbac.use: no right\n         to check: grant it"),
            "{text}"
        );
        assert!(text.ends_with("1 ok, 0 warn, 1 fail, 1 skipped: a gMSA pod will not work until each FAIL is fixed\n"), "{text}");
    }

    #[test]
    fn json_is_stable() {
        let j = report().to_json();
        assert_eq!(j["checks"][1]["id"], "webhook.service");
        assert_eq!(j["checks"][1]["group"], "webhooks");
        assert_eq!(j["checks"][1]["status"], "fail");
        assert_eq!(j["checks"][1]["details"][0], "Service gmsa/gmsa");
        assert!(j["checks"][0].get("fix").is_none());
        assert_eq!(j["summary"]["fail"], 1);
    }
}
