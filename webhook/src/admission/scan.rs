//! Phase 1: read only what the rules need from the pod JSON, borrowing from the request body.

use std::borrow::Cow;

use serde::Deserialize;

use super::{ContainerList, Denial, Location, Operation, PodRef, Scan, WindowsOptions};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodIn<'a> {
    #[serde(borrow, default)]
    metadata: Option<MetaIn<'a>>,
    #[serde(borrow, default)]
    spec: Option<SpecIn<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaIn<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    generate_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SpecIn<'a> {
    #[serde(borrow, default)]
    hostname: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    service_account_name: Option<Cow<'a, str>>,
    /// Deprecated alias of `serviceAccountName`, used only when the latter is empty.
    #[serde(borrow, default)]
    service_account: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    security_context: Option<SecurityContextIn<'a>>,
    #[serde(borrow, default)]
    containers: Option<Vec<ContainerIn<'a>>>,
    #[serde(borrow, default)]
    init_containers: Option<Vec<ContainerIn<'a>>>,
    #[serde(borrow, default)]
    ephemeral_containers: Option<Vec<ContainerIn<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerIn<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    security_context: Option<SecurityContextIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecurityContextIn<'a> {
    #[serde(borrow, default)]
    windows_options: Option<WindowsOptionsIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WindowsOptionsIn<'a> {
    #[serde(borrow, default)]
    gmsa_credential_spec_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    gmsa_credential_spec: Option<Cow<'a, str>>,
}

fn gmsa_fields<'a>(
    security_context: Option<SecurityContextIn<'a>>,
) -> (Option<Cow<'a, str>>, Option<Cow<'a, str>>) {
    match security_context.and_then(|s| s.windows_options) {
        Some(w) => (w.gmsa_credential_spec_name, w.gmsa_credential_spec),
        None => (None, None),
    }
}

fn parse_pod<'a>(raw: &'a str, which: &str) -> Result<PodIn<'a>, Denial> {
    // serde accepts a sequence for a struct: insist on an object (or null, reported below).
    let trimmed = raw.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with("null")) {
        return Err(Denial::MalformedPod {
            which: which.to_string(),
            error: format!(
                "expected a JSON object, got {}",
                trimmed
                    .chars()
                    .next()
                    .map_or("nothing".to_string(), |c| format!("{c:?}"))
            ),
        });
    }
    serde_json::from_str::<Option<PodIn<'a>>>(raw)
        .map_err(|e| Denial::MalformedPod {
            which: which.to_string(),
            error: e.to_string(),
        })?
        .ok_or_else(|| Denial::MalformedPod {
            which: which.to_string(),
            error: "it is null".to_string(),
        })
}

/// Every windows options block of a pod spec, in rule order.
fn options_of(spec: Option<SpecIn<'_>>) -> Vec<WindowsOptions<'_>> {
    let Some(spec) = spec else {
        return Vec::new();
    };
    let (name, contents) = gmsa_fields(spec.security_context);
    let mut out = vec![WindowsOptions {
        location: Location::Pod,
        name,
        contents,
    }];
    let lists = [
        (ContainerList::Containers, spec.containers),
        (ContainerList::InitContainers, spec.init_containers),
        (
            ContainerList::EphemeralContainers,
            spec.ephemeral_containers,
        ),
    ];
    for (list, containers) in lists {
        for (index, c) in containers.unwrap_or_default().into_iter().enumerate() {
            let (name, contents) = gmsa_fields(c.security_context);
            out.push(WindowsOptions {
                location: Location::Container {
                    list,
                    index,
                    name: c.name,
                },
                name,
                contents,
            });
        }
    }
    out
}

/// Reads a pod (and, on UPDATE, the old pod) into a [`Scan`].
///
/// `object` / `old_object` are the raw JSON of the request's `object` / `oldObject`;
/// `namespace` and `sub_resource` come from the request. A pod that is not a JSON object of
/// the right shape is denied with 400 and the parse error.
pub fn scan<'a>(
    operation: Operation,
    namespace: Option<&'a str>,
    sub_resource: Option<&'a str>,
    object: Option<&'a str>,
    old_object: Option<&'a str>,
) -> Result<Scan<'a>, Denial> {
    let object = object.ok_or_else(|| Denial::MalformedPod {
        which: "object".to_string(),
        error: "the request has no object".to_string(),
    })?;
    let pod = parse_pod(object, "object")?;
    let old_options = match (operation, old_object) {
        (Operation::Update, Some(raw)) => Some(options_of(parse_pod(raw, "oldObject")?.spec)),
        (Operation::Update, None) => {
            return Err(Denial::MalformedPod {
                which: "oldObject".to_string(),
                error: "an UPDATE request has no oldObject".to_string(),
            })
        }
        (Operation::Create, _) => None,
    };
    let meta = pod.metadata.unwrap_or_default();
    let namespace: Cow<'a, str> = match namespace.filter(|n| !n.is_empty()) {
        Some(n) => Cow::Borrowed(n),
        None => meta.namespace.unwrap_or_default(),
    };
    let pod_ref = PodRef::new(
        meta.name.unwrap_or_default(),
        meta.generate_name.unwrap_or_default(),
    );
    let mut spec = pod.spec.unwrap_or_default();
    let service_account = [
        spec.service_account_name.take(),
        spec.service_account.take(),
    ]
    .into_iter()
    .flatten()
    .find(|s| !s.is_empty())
    .unwrap_or(Cow::Borrowed("default"));
    let hostname = spec.hostname.take().filter(|h| !h.is_empty());
    Ok(Scan {
        operation,
        sub_resource: sub_resource.filter(|s| !s.is_empty()).map(Cow::Borrowed),
        namespace,
        pod: pod_ref,
        service_account,
        hostname,
        options: options_of(Some(spec)),
        old_options,
    })
}
