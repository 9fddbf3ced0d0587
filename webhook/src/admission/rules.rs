//! Phase 3: the rules. Mutate inlines contents (and may set a random hostname); validate
//! checks authorization, contents and immutability. The first problem in scan order wins
//! (pod level, then `containers`, `initContainers`, `ephemeralContainers`).

use std::collections::BTreeSet;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};

use super::{
    random_hostname, DecideOptions, Decision, Denial, Hook, Location, Needs, Operation, Resolved,
    Scan, SpecNeed, Where, WindowsOptions, AUDIT_CREDSPECS, AUDIT_CREDSPEC_PLUGINS,
};
use crate::lookup::{CredSpecEntry, LookupError, SpecLookup};

/// Whether pre-set contents equal a spec's: byte-equal fast path, else parsed JSON deep-equal.
pub fn contents_match(preset: &str, spec: &CredSpecEntry) -> bool {
    preset == &*spec.json
        || match (
            serde_json::from_str::<serde_json::Value>(preset),
            serde_json::from_str::<serde_json::Value>(&spec.json),
        ) {
            (Ok(preset), Ok(spec)) => preset == spec,
            _ => false,
        }
}

fn same_place(a: &Location<'_>, b: &Location<'_>) -> bool {
    match (a, b) {
        (Location::Pod, Location::Pod) => true,
        (
            Location::Container {
                list: la, name: na, ..
            },
            Location::Container {
                list: lb, name: nb, ..
            },
        ) => la == lb && na == nb,
        _ => false,
    }
}

impl<'a> Scan<'a> {
    /// The options block of `oldObject` at the same place (pod level, or the container of the
    /// same list with the same name). `None` on CREATE or for a container that is new.
    pub fn counterpart(&self, options: &WindowsOptions<'_>) -> Option<&WindowsOptions<'a>> {
        self.old_options
            .as_ref()?
            .iter()
            .find(|old| same_place(&old.location, &options.location))
    }

    /// The blocks this request adds, which the create rules apply to: all of them on CREATE; on
    /// UPDATE those with no counterpart in `oldObject` (ephemeral containers added through
    /// `pods/ephemeralcontainers`).
    pub fn added(&self) -> impl Iterator<Item = &WindowsOptions<'a>> {
        self.options
            .iter()
            .filter(|o| self.operation == Operation::Create || self.counterpart(o).is_none())
    }

    /// Whether any block of the new object names a spec.
    pub fn names_a_spec(&self) -> bool {
        self.options.iter().any(|o| o.name.is_some())
    }

    /// The lookups [`decide`] needs for `kind`.
    pub fn needs(&self, kind: Hook) -> Needs<'_> {
        let mut needs = Needs::default();
        for o in self.added() {
            let Some(name) = o.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let preset = o.contents.as_deref();
            let wants_spec = match kind {
                Hook::Mutate => preset.is_none(),
                Hook::Validate => {
                    if !needs.uses.contains(&name) {
                        needs.uses.push(name);
                    }
                    preset.is_some()
                }
            };
            if !wants_spec {
                continue;
            }
            let need = match needs.specs.iter().position(|s| s.name == name) {
                Some(i) => &mut needs.specs[i],
                None => {
                    needs.specs.push(SpecNeed {
                        name,
                        presets: Vec::new(),
                    });
                    let last = needs.specs.len() - 1;
                    &mut needs.specs[last]
                }
            };
            if let Some(p) = preset {
                need.presets.push(p);
            }
        }
        needs
    }
}

/// Runs the rules for `kind` on a scan whose [`Scan::needs`] were resolved into `resolved`.
pub fn decide(
    kind: Hook,
    scan: &Scan<'_>,
    resolved: &Resolved,
    options: &DecideOptions,
) -> Decision {
    let mut decision = Decision::allow();
    let names: BTreeSet<&str> = scan
        .options
        .iter()
        .filter_map(|o| o.name.as_deref())
        .filter(|n| !n.is_empty())
        .collect();
    decision.plugins = names
        .iter()
        .filter_map(|n| match resolved.specs.get(*n) {
            Some(Ok(SpecLookup::Found(entry))) => Some(entry.plugin),
            _ => None,
        })
        .collect();
    if !decision.plugins.is_empty() {
        let list: Vec<&str> = decision.plugins.iter().copied().collect();
        decision
            .audit_annotations
            .insert(AUDIT_CREDSPEC_PLUGINS.to_string(), list.join(","));
    }
    if !names.is_empty() {
        let list: Vec<&str> = names.into_iter().collect();
        decision
            .audit_annotations
            .insert(AUDIT_CREDSPECS.to_string(), list.join(","));
    }
    let result = match kind {
        Hook::Mutate => mutate(scan, resolved, options, &mut decision),
        Hook::Validate => validate(scan, resolved),
    };
    if let Err(denial) = result {
        decision.denial = Some(denial);
        decision.patch.clear();
        decision.warnings.clear();
    }
    decision
}

/// What a denial about one block needs to say where it is.
struct At<'s> {
    scan: &'s Scan<'s>,
    options: &'s WindowsOptions<'s>,
}

impl At<'_> {
    fn here(&self) -> Box<Where> {
        Box::new(Where {
            pod: self.scan.pod.to_owned_ref(),
            place: self.options.location.to_string(),
        })
    }
}

fn not_resolved(what: &str) -> LookupError {
    LookupError::Unavailable(format!("internal error: {what} was not looked up"))
}

/// The spec `name` must be found with contents; else the matching denial.
fn found_spec<'r>(
    resolved: &'r Resolved,
    name: &str,
    at: &At<'_>,
) -> Result<&'r CredSpecEntry, Denial> {
    let spec = name.to_string();
    match resolved.specs.get(name) {
        Some(Ok(SpecLookup::Found(entry))) => Ok(entry),
        Some(Ok(SpecLookup::NotFound)) => Err(Denial::SpecNotFound {
            at: at.here(),
            spec,
        }),
        Some(Ok(SpecLookup::NoCredSpec)) => Err(Denial::NoCredSpec {
            at: at.here(),
            spec,
        }),
        Some(Err(error)) => Err(Denial::SpecLookupFailed {
            at: at.here(),
            spec,
            error: error.clone(),
        }),
        None => Err(Denial::SpecLookupFailed {
            at: at.here(),
            error: not_resolved(&format!("cred spec {spec:?}")),
            spec,
        }),
    }
}

fn named<'s>(options: &'s WindowsOptions<'_>, at: &At<'_>) -> Result<Option<&'s str>, Denial> {
    match options.name.as_deref() {
        Some("") => Err(Denial::EmptyName { at: at.here() }),
        other => Ok(other),
    }
}

fn mutate(
    scan: &Scan<'_>,
    resolved: &Resolved,
    options: &DecideOptions,
    decision: &mut Decision,
) -> Result<(), Denial> {
    for o in scan.added() {
        let at = At { scan, options: o };
        let Some(name) = named(o, &at)? else {
            continue;
        };
        if o.contents.is_some() {
            // Pre-set contents are left alone: validation checks them.
            continue;
        }
        let entry = found_spec(resolved, name, &at)?;
        if entry.json.len() > gmsa_crd::MAX_INLINED_BYTES {
            return Err(Denial::SpecTooLarge {
                at: at.here(),
                spec: name.to_string(),
                bytes: entry.json.len(),
            });
        }
        decision.patch.push(PatchOperation::Add(AddOperation {
            path: o.contents_pointer(),
            value: serde_json::Value::String(entry.json.to_string()),
        }));
    }
    if scan.operation == Operation::Create && options.random_hostname && scan.names_a_spec() {
        match &scan.hostname {
            None => decision.patch.push(PatchOperation::Add(AddOperation {
                path: PointerBuf::from_tokens(["spec", "hostname"]),
                value: serde_json::Value::String(random_hostname(options.hostname_seed)),
            })),
            Some(hostname) => decision.warnings.push(format!(
                "{} keeps its spec.hostname {hostname:?}: hostname randomization is on, but a \
                 preset hostname is never replaced; replicas sharing one hostname can conflict \
                 in Active Directory",
                scan.pod
            )),
        }
    }
    Ok(())
}

fn field_change(old: Option<&str>, new: Option<&str>) -> Option<&'static str> {
    match (old, new) {
        (None, None) => None,
        (None, Some(_)) => Some("added"),
        (Some(_), None) => Some("removed"),
        (Some(a), Some(b)) if a == b => None,
        (Some(_), Some(_)) => Some("modified"),
    }
}

/// How an UPDATE changes a block's GMSA settings, e.g. `GMSA name and contents modified`.
fn describe_change(old: &WindowsOptions<'_>, new: &WindowsOptions<'_>) -> Option<String> {
    let name = field_change(old.name.as_deref(), new.name.as_deref());
    let contents = field_change(old.contents.as_deref(), new.contents.as_deref());
    match (name, contents) {
        (None, None) => None,
        (Some(n), Some(c)) if n == c => Some(format!("GMSA name and contents {n}")),
        (Some(n), Some(c)) => Some(format!("GMSA name {n} and GMSA contents {c}")),
        (Some(n), None) => Some(format!("GMSA name {n}")),
        (None, Some(c)) => Some(format!("GMSA contents {c}")),
    }
}

fn validate(scan: &Scan<'_>, resolved: &Resolved) -> Result<(), Denial> {
    for o in &scan.options {
        let at = At { scan, options: o };
        if let Some(old) = scan.counterpart(o) {
            if let Some(change) = describe_change(old, o) {
                return Err(Denial::UpdateForbidden {
                    at: at.here(),
                    change,
                });
            }
            continue;
        }
        // A create, or a container new in this update: the create rules.
        let Some(name) = named(o, &at)? else {
            if o.contents.is_some() {
                return Err(Denial::ContentsWithoutName { at: at.here() });
            }
            continue;
        };
        let service_account = scan.service_account.to_string();
        match resolved.uses.get(name) {
            Some(Ok(d)) if d.allowed => {}
            Some(Ok(d)) => {
                return Err(Denial::Unauthorized {
                    at: at.here(),
                    spec: name.to_string(),
                    namespace: scan.namespace.to_string(),
                    service_account,
                    reason: d.reason.clone(),
                })
            }
            Some(Err(error)) => {
                return Err(Denial::AuthzFailed {
                    at: at.here(),
                    spec: name.to_string(),
                    service_account,
                    error: error.clone(),
                })
            }
            None => {
                return Err(Denial::AuthzFailed {
                    at: at.here(),
                    spec: name.to_string(),
                    service_account,
                    error: not_resolved("the use check"),
                })
            }
        }
        if let Some(preset) = o.contents.as_deref() {
            let entry = found_spec(resolved, name, &at)?;
            if !contents_match(preset, entry) {
                return Err(Denial::ContentsMismatch {
                    at: at.here(),
                    spec: name.to_string(),
                });
            }
        }
    }
    Ok(())
}
