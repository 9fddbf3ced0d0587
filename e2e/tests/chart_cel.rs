//! The chart's matchConditions: when they render (by Kubernetes version, unless forced), what
//! the CEL expression looks at (the pod and every container list of object and oldObject),
//! and its evaluation with cel-python over pods that do and do not mention GMSA.

use gmsa_e2e::chart::{has_match_conditions, render, text, tools, Tools, NEWEST, OLDEST};
use serde_json::{json, Value};
use std::process::Command;

#[test]
fn match_conditions_follow_the_kubernetes_version_unless_forced() {
    let oldest = render(OLDEST, &[]);
    assert!(!has_match_conditions(&oldest), "auto: off before 1.30");
    assert!(
        has_match_conditions(&render("1.30.0", &[])),
        "auto: on from 1.30 (GA)"
    );
    assert!(
        has_match_conditions(&render(OLDEST, &["webhook.matchConditions.enabled=true"])),
        "forced on (beta in 1.28)"
    );
    assert!(
        !has_match_conditions(&render(NEWEST, &["webhook.matchConditions.enabled=false"])),
        "forced off"
    );
}

#[test]
fn cel_match_condition_looks_at_the_pod_and_every_container_list_of_object_and_old_object() {
    let r = render(NEWEST, &[]);
    for hook in r.webhooks() {
        let conds = hook["matchConditions"].as_array().expect("matchConditions");
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["name"], "pod-mentions-gmsa");
        let expr = conds[0]["expression"].as_str().expect("expression");
        for var in ["object", "oldObject"] {
            for place in [
                format!("has({var}.spec.securityContext.windowsOptions.gmsaCredentialSpecName)"),
                format!("has({var}.spec.securityContext.windowsOptions.gmsaCredentialSpec)"),
                format!("has({var}.spec.containers) && {var}.spec.containers.exists(c,"),
                format!("has({var}.spec.initContainers) && {var}.spec.initContainers.exists(c,"),
                format!("has({var}.spec.ephemeralContainers) && {var}.spec.ephemeralContainers.exists(c,"),
            ] {
                assert!(expr.contains(&place), "expression lacks {place}:\n{expr}");
            }
        }
        assert!(
            expr.contains("|| (request.operation == \"UPDATE\" && ("),
            "oldObject (null on CREATE) is only read on UPDATE:\n{expr}"
        );
        assert_eq!(
            expr.matches("has(c.securityContext.windowsOptions.gmsaCredentialSpecName)")
                .count(),
            6
        );
        assert_eq!(
            expr.matches('(').count(),
            expr.matches(')').count(),
            "balanced parentheses:\n{expr}"
        );
    }
}

/// Evaluates the rendered CEL with cel-python for each (operation, object, oldObject).
fn eval_cel(tools: &Tools, expr: &str, cases: &[(&str, Value, Value)]) -> Vec<bool> {
    const SCRIPT: &str = r#"
import json, sys, celpy
expr, cases = json.load(sys.stdin)
env = celpy.Environment()
prog = env.program(env.compile(expr))
out = []
for op, obj, old in cases:
    result = prog.evaluate({"request": celpy.json_to_cel({"operation": op}),
                            "object": celpy.json_to_cel(obj), "oldObject": celpy.json_to_cel(old)})
    if not isinstance(result, celpy.celtypes.BoolType):
        sys.exit(f"not a bool: {result!r} for {op} {obj} {old}")
    out.append(bool(result))
print(json.dumps(out))
"#;
    use std::io::Write;
    let mut child = Command::new(&tools.python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python");
    let input = json!([
        expr,
        cases
            .iter()
            .map(|(op, o, old)| json!([op, o, old]))
            .collect::<Vec<_>>()
    ]);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write cases");
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "CEL evaluation failed:\n{}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON list of booleans")
}

/// A pod whose `place` ("pod", "containers", "initContainers", "ephemeralContainers") carries
/// `windows_options`; the other places have none. The GMSA container is the second one.
fn pod_with(place: &str, windows_options: &Value) -> Value {
    let sc = json!({"windowsOptions": windows_options});
    let plain = json!({"name": "plain", "image": "x"});
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [plain.clone()]}});
    match place {
        "pod" => pod["spec"]["securityContext"] = sc,
        list => {
            let mut c = json!({"name": "gmsa", "image": "x"});
            c["securityContext"] = sc;
            let items = pod["spec"]
                .get(list)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            pod["spec"][list] = Value::Array(items.into_iter().chain([c]).collect());
        }
    }
    pod
}

#[test]
fn cel_match_condition_passes_exactly_the_pods_that_mention_gmsa() {
    let tools = tools();
    let r = render(NEWEST, &[]);
    let places = ["pod", "containers", "initContainers", "ephemeralContainers"];
    let gmsa = [
        json!({"gmsaCredentialSpecName": "webapp01"}),
        json!({"gmsaCredentialSpec": "{}"}),
        json!({"gmsaCredentialSpecName": "a", "gmsaCredentialSpec": "{}"}),
    ];
    let other = [
        json!({"runAsUserName": "ContainerUser"}),
        json!({"hostProcess": false}),
    ];
    let none = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"runAsNonRoot": true}}]}});
    let mut cases: Vec<(&str, Value, Value, bool)> = vec![
        ("CREATE", none.clone(), Value::Null, false),
        ("UPDATE", none.clone(), none.clone(), false),
    ];
    for place in places {
        for w in &gmsa {
            cases.push(("CREATE", pod_with(place, w), Value::Null, true));
            cases.push(("UPDATE", pod_with(place, w), none.clone(), true));
            // UPDATE that removes GMSA: the old pod mentions it, so the webhook must see it.
            cases.push(("UPDATE", none.clone(), pod_with(place, w), true));
        }
        for w in &other {
            cases.push(("CREATE", pod_with(place, w), Value::Null, false));
            cases.push(("UPDATE", pod_with(place, w), pod_with(place, w), false));
        }
        cases.push(("CREATE", pod_with(place, &json!({})), Value::Null, false));
    }
    let input: Vec<(&str, Value, Value)> = cases
        .iter()
        .map(|(op, o, old, _)| (*op, o.clone(), old.clone()))
        .collect();
    for hook in r.webhooks() {
        let expr = hook["matchConditions"][0]["expression"]
            .as_str()
            .expect("expression");
        let got = eval_cel(&tools, expr, &input);
        assert_eq!(got.len(), cases.len());
        for ((op, obj, old, want), got) in cases.iter().zip(got) {
            assert_eq!(got, *want, "{op}\nobject: {obj}\noldObject: {old}");
        }
    }
}
