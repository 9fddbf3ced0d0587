//! `gmsa spec verify`: checks a credential spec against what the domain reports.
//! [`facts_for`] reads (I/O); [`verify`] decides (pure, table-tested).

use std::collections::BTreeMap;
use std::fmt;

use gmsa_crd::CredSpec;

use crate::sd::{Access, READ_PROPERTY};
use crate::{Account, AdError, Directory, Domain, Guid, Principal, Sid};

/// Everything [`verify`] needs, read from the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The domain the server serves.
    pub domain: Domain,
    /// Each gMSA the spec names in this domain (lookup name without `$`) and what was found.
    pub accounts: Vec<(String, Option<Account>)>,
    /// Each `--node` and what was found.
    pub nodes: Vec<(String, Option<Principal>)>,
    /// Names for the SIDs in the accounts' `msDS-GroupMSAMembership`.
    pub names: BTreeMap<Sid, String>,
}

/// One thing wrong with the spec, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The spec field or object concerned, e.g. `DomainJoinConfig.Sid` or `gMSA WebApp1`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub fix: String,
}

/// The `field` of a problem about a node's computer account: `node NAME$`.
const NODE_FIELD: &str = "node ";

impl Problem {
    /// The node (`NAME$`) this problem is about, when it is about a node's computer account
    /// rather than the spec.
    pub fn node(&self) -> Option<&str> {
        self.field.strip_prefix(NODE_FIELD)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; fix: {}", self.field, self.message, self.fix)
    }
}

/// A principal listed in a gMSA's `msDS-GroupMSAMembership`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reader {
    /// Its SID.
    pub sid: Sid,
    /// Its name (`DOMAIN\name`, a well-known name, or the SID).
    pub name: String,
    /// `true` for a deny entry.
    pub denied: bool,
}

/// Who may retrieve one gMSA's password, and the answer for each `--node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountReaders {
    /// The gMSA's name.
    pub account: String,
    /// Allow and deny entries.
    pub readers: Vec<Reader>,
    /// `(node, may retrieve)` for each node that was found.
    pub nodes: Vec<(String, bool)>,
}

/// The result of [`verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Problems; empty means the spec matches the domain.
    pub problems: Vec<Problem>,
    /// Who may retrieve each gMSA's password.
    pub readers: Vec<AccountReaders>,
    /// Things not checked, e.g. accounts scoped to another domain.
    pub notes: Vec<String>,
}

/// The gMSA names a spec refers to in `domain` (`MachineAccountName` first, then every
/// `GroupManagedServiceAccounts` entry whose scope names the domain), without duplicates.
/// Also returns the entries scoped to other domains (not checkable here).
fn spec_accounts(spec: &CredSpec, domain: &Domain) -> (Vec<String>, Vec<String>) {
    let mut ours: Vec<String> = Vec::new();
    let mut foreign = Vec::new();
    let push = |name: &str, list: &mut Vec<String>| {
        let name = name.trim().trim_end_matches('$').to_string();
        if !name.is_empty() && !list.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            list.push(name);
        }
    };
    if let Some(name) = spec.machine_account_name() {
        push(name, &mut ours);
    }
    let entries = spec
        .active_directory_config
        .as_ref()
        .and_then(|a| a.group_managed_service_accounts.as_ref());
    for entry in entries.into_iter().flatten() {
        let Some(name) = entry.name.as_deref() else {
            continue;
        };
        match entry.scope.as_deref() {
            Some(scope) if !domain.is_named(scope) => foreign.push(format!("{name}@{scope}")),
            _ => push(name, &mut ours),
        }
    }
    (ours, foreign)
}

/// Reads the facts for `spec` and `nodes` (computer names, `NAME$` or `NAME`).
pub fn facts_for(dir: &mut Directory, spec: &CredSpec, nodes: &[String]) -> Result<Facts, AdError> {
    let domain = dir.domain()?;
    let (names, _) = spec_accounts(spec, &domain);
    let mut accounts = Vec::new();
    let mut sid_names = BTreeMap::new();
    for name in names {
        let account = dir.account(&name)?;
        if let Some(sd) = account.as_ref().and_then(|a| a.membership.as_ref()) {
            for sid in sd
                .allowed(READ_PROPERTY)
                .into_iter()
                .chain(sd.denied(READ_PROPERTY))
            {
                if let std::collections::btree_map::Entry::Vacant(slot) = sid_names.entry(sid) {
                    let shown = dir.sid_name(slot.key())?;
                    slot.insert(shown);
                }
            }
        }
        accounts.push((name, account));
    }
    let mut found_nodes = Vec::new();
    for node in nodes {
        found_nodes.push((node.clone(), dir.principal(node)?));
    }
    Ok(Facts {
        domain,
        accounts,
        nodes: found_nodes,
        names: sid_names,
    })
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim()
        .trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim().trim_end_matches('.'))
}

/// Checks `spec` against `facts`.
pub fn verify(spec: &CredSpec, facts: &Facts) -> Report {
    let mut report = Report::default();
    let d = &facts.domain;
    let mut problem = |field: &str, message: String, fix: String| {
        report.problems.push(Problem {
            field: field.to_string(),
            message,
            fix,
        })
    };
    let domain_name = &d.dns_name;
    match &spec.domain_join_config {
        None => problem(
            "DomainJoinConfig",
            "missing".into(),
            format!("regenerate the spec with `gmsa spec from-dc` against {domain_name}"),
        ),
        Some(join) => {
            // Sid
            let want_sid = d.sid.to_string();
            match join.sid.as_deref() {
                None => problem(
                    "DomainJoinConfig.Sid",
                    "missing".into(),
                    format!("set it to {want_sid}"),
                ),
                Some(text) => match text.parse::<Sid>() {
                    Err(e) => problem(
                        "DomainJoinConfig.Sid",
                        e.to_string(),
                        format!("set it to {want_sid}"),
                    ),
                    Ok(sid) if sid == d.sid => {}
                    Ok(sid) => {
                        let why = if sid.parent().as_ref() == Some(&d.sid) {
                            format!("is {sid}, an account's SID in {domain_name} (RID {}), not the domain's", sid.rid().unwrap_or(0))
                        } else {
                            format!("is {sid}, but the SID of {domain_name} is {want_sid}")
                        };
                        problem("DomainJoinConfig.Sid", why, format!("set it to {want_sid} (the domain SID, from Get-ADDomain or `gmsa spec from-dc`)"));
                    }
                },
            }
            // Guid
            let want_guid = d.guid.to_string();
            match join.guid.as_deref() {
                None => problem(
                    "DomainJoinConfig.Guid",
                    "missing".into(),
                    format!("set it to {want_guid}"),
                ),
                Some(text) => match Guid::parse(text) {
                    Some(g) if g == d.guid => {}
                    Some(_) => problem(
                        "DomainJoinConfig.Guid",
                        format!("is {text}, but the objectGUID of {domain_name} is {want_guid}"),
                        format!("set it to {want_guid}"),
                    ),
                    None => problem(
                        "DomainJoinConfig.Guid",
                        format!("`{text}` is not a GUID"),
                        format!("set it to {want_guid}"),
                    ),
                },
            }
            // Names
            let names = [
                (
                    "DomainJoinConfig.NetBiosName",
                    join.net_bios_name.as_deref(),
                    &d.netbios_name,
                    "the domain's NetBIOS name",
                ),
                (
                    "DomainJoinConfig.DnsName",
                    join.dns_name.as_deref(),
                    &d.dns_name,
                    "the domain's DNS name",
                ),
                (
                    "DomainJoinConfig.DnsTreeName",
                    join.dns_tree_name.as_deref(),
                    &d.forest_dns_name,
                    "the forest root domain's DNS name",
                ),
            ];
            for (field, got, want, what) in names {
                match got {
                    None => problem(
                        field,
                        "missing".into(),
                        format!("set it to {want} ({what})"),
                    ),
                    Some(got) if same_name(got, want) => {}
                    Some(got) => problem(
                        field,
                        format!("is `{got}`, but {what} is `{want}`"),
                        format!("set it to {want}"),
                    ),
                }
            }
            if join
                .machine_account_name
                .as_deref()
                .is_none_or(|n| n.trim().is_empty())
            {
                problem(
                    "DomainJoinConfig.MachineAccountName",
                    "missing".into(),
                    "set it to the gMSA's name (without `$`)".into(),
                );
            }
        }
    }
    if spec.account_name().is_none() {
        problem(
            "ActiveDirectoryConfig.GroupManagedServiceAccounts",
            "lists no gMSA".into(),
            format!(
                "add {{Name: <gMSA>, Scope: {}}} and {{Name: <gMSA>, Scope: {}}}",
                d.dns_name, d.netbios_name
            ),
        );
    }
    let (_, foreign) = spec_accounts(spec, d);
    for entry in foreign {
        report.notes.push(format!(
            "{entry}: scoped to another domain, not checked against {domain_name}"
        ));
    }

    for (name, account) in &facts.accounts {
        let field = format!("gMSA {name}");
        let Some(account) = account else {
            problem(
                &field,
                format!("not found in {domain_name}"),
                format!("create it (New-ADServiceAccount {name} / samba-tool service-account create --name={name}) or correct the name in the spec"),
            );
            continue;
        };
        if !account.is_gmsa() {
            problem(
                &field,
                format!(
                    "{} is not a group managed service account (objectClass {})",
                    account.dn,
                    account.object_classes.join(", ")
                ),
                "name a gMSA (msDS-GroupManagedServiceAccount) in the spec".into(),
            );
            continue;
        }
        if !account.enabled() {
            problem(
                &field,
                format!("{} is disabled", account.dn),
                format!(
                    "enable it (Enable-ADAccount '{name}$' / samba-tool user enable '{name}$')"
                ),
            );
        }
        let mut readers = AccountReaders {
            account: name.clone(),
            readers: Vec::new(),
            nodes: Vec::new(),
        };
        let Some(sd) = &account.membership else {
            problem(
                &field,
                "has no readable msDS-GroupMSAMembership: nobody may retrieve its password, or the bind user may not read who may".into(),
                format!("allow the nodes (Set-ADServiceAccount {name} -PrincipalsAllowedToRetrieveManagedPassword <group>) and bind as a user that may read the attribute"),
            );
            report.readers.push(readers);
            continue;
        };
        let name_of = |sid: &Sid| {
            facts
                .names
                .get(sid)
                .cloned()
                .unwrap_or_else(|| sid.to_string())
        };
        for (sids, denied) in [
            (sd.allowed(READ_PROPERTY), false),
            (sd.denied(READ_PROPERTY), true),
        ] {
            for sid in sids {
                readers.readers.push(Reader {
                    name: name_of(&sid),
                    sid,
                    denied,
                });
            }
        }
        for (node, principal) in &facts.nodes {
            let Some(principal) = principal else { continue };
            let allowed = match sd.access_check(&principal.token, READ_PROPERTY) {
                Access::Granted(_) => true,
                Access::Denied(by) => {
                    problem(
                        &format!("{NODE_FIELD}{node}"),
                        format!(
                            "may not retrieve the password of gMSA {name}: denied through {}",
                            name_of(&by)
                        ),
                        format!(
                            "remove the deny entry for {} from msDS-GroupMSAMembership of {name}",
                            name_of(&by)
                        ),
                    );
                    false
                }
                Access::NotGranted => {
                    problem(
                        &format!("{NODE_FIELD}{node}"),
                        format!("may not retrieve the password of gMSA {name}: neither it nor any of its groups is in msDS-GroupMSAMembership"),
                        format!("add the node or a group it is in: Set-ADServiceAccount {name} -PrincipalsAllowedToRetrieveManagedPassword <group> (or samba-tool service-account group-msa-membership add --name={name} --principal=<group DN>)"),
                    );
                    false
                }
            };
            readers.nodes.push((node.clone(), allowed));
        }
        report.readers.push(readers);
    }
    for (node, principal) in &facts.nodes {
        if principal.is_none() {
            problem(
                &format!("{NODE_FIELD}{node}"),
                format!("no computer account `{node}` in {domain_name}"),
                "check the node's computer name (sAMAccountName, e.g. NODE1$) and that it is joined to this domain".into(),
            );
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecurityDescriptor;
    use serde_json::json;

    const DOM: &str = "S-1-5-21-4044253830-2194346892-966066598";

    fn dom(rid: u32) -> Sid {
        DOM.parse::<Sid>().expect("sid").child(rid)
    }

    fn domain() -> Domain {
        Domain {
            dn: "DC=test,DC=example".into(),
            dns_name: "test.example".into(),
            forest_dns_name: "test.example".into(),
            netbios_name: "TEST".into(),
            sid: DOM.parse().expect("sid"),
            guid: Guid::parse("f1e2072f-db10-4c71-a696-bc7eac461a70").expect("guid"),
        }
    }

    /// Allows RID 1104 (a computer) and 1107 (a group); denies RID 1200.
    fn membership() -> SecurityDescriptor {
        let mut sd = SecurityDescriptor {
            control: 0x8004,
            owner: None,
            group: None,
            dacl: Some(crate::Acl {
                revision: 2,
                aces: Vec::new(),
            }),
        };
        let ace = |kind, sid| crate::Ace {
            ace_type: if kind == crate::AceKind::Allow { 0 } else { 1 },
            kind,
            flags: 0,
            mask: 0x000f_01ff,
            object_type: None,
            inherited_object_type: None,
            sid: Some(sid),
        };
        if let Some(dacl) = sd.dacl.as_mut() {
            dacl.aces = vec![
                ace(crate::AceKind::Deny, dom(1200)),
                ace(crate::AceKind::Allow, dom(1104)),
                ace(crate::AceKind::Allow, dom(1107)),
            ];
        }
        sd
    }

    fn gmsa(name: &str, uac: u32) -> Account {
        Account {
            name: name.into(),
            dn: format!("CN={name},CN=Managed Service Accounts,DC=test,DC=example"),
            sam_account_name: format!("{name}$"),
            sid: dom(1103),
            object_classes: vec![
                "top".into(),
                "computer".into(),
                "msDS-GroupManagedServiceAccount".into(),
            ],
            user_account_control: uac,
            membership: Some(membership()),
        }
    }

    fn node(name: &str, token_rids: &[u32]) -> (String, Option<Principal>) {
        let sid = dom(token_rids[0]);
        (
            format!("{name}$"),
            Some(Principal {
                name: name.into(),
                dn: format!("CN={name},CN=Computers,DC=test,DC=example"),
                sid,
                token: token_rids.iter().map(|r| dom(*r)).collect(),
            }),
        )
    }

    /// What `from-dc` builds for [`domain`]: the crd crate's `New-CredentialSpec` shape.
    fn good_spec() -> serde_json::Value {
        CredSpec::build(&gmsa_crd::NewCredSpec {
            account: "WebApp1".into(),
            domain: domain().info(),
            ..Default::default()
        })
        .to_value()
    }

    fn facts(nodes: Vec<(String, Option<Principal>)>) -> Facts {
        let mut names = BTreeMap::new();
        names.insert(dom(1104), "TEST\\NODE1$".to_string());
        names.insert(dom(1107), "TEST\\GmsaNodes".to_string());
        Facts {
            domain: domain(),
            accounts: vec![("WebApp1".into(), Some(gmsa("WebApp1", 0x1000)))],
            nodes,
            names,
        }
    }

    fn run(spec: serde_json::Value, facts: &Facts) -> Report {
        verify(&CredSpec::from_value(&spec).expect("spec parses"), facts)
    }

    #[test]
    fn a_matching_spec_passes_and_lists_readers() {
        let f = facts(vec![
            node("NODE1", &[1104, 515]),
            node("NODE2", &[1105, 515, 1107]),
        ]);
        let report = run(good_spec(), &f);
        assert_eq!(report.problems, vec![]);
        assert_eq!(report.readers.len(), 1);
        let r = &report.readers[0];
        let shown: Vec<(String, bool)> = r
            .readers
            .iter()
            .map(|x| (x.name.clone(), x.denied))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("TEST\\NODE1$".into(), false),
                ("TEST\\GmsaNodes".into(), false),
                (dom(1200).to_string(), true),
            ]
        );
        assert_eq!(
            r.nodes,
            vec![("NODE1$".into(), true), ("NODE2$".into(), true)]
        );
    }

    #[test]
    fn each_wrong_field_is_one_problem() {
        let table: Vec<(&str, serde_json::Value, &str)> = vec![
            (
                "DomainJoinConfig.Sid",
                json!(format!("{DOM}-1103")),
                "an account's SID",
            ),
            (
                "DomainJoinConfig.Sid",
                json!("S-1-5-21-1-2-3"),
                "but the SID of test.example is",
            ),
            ("DomainJoinConfig.Sid", json!("not-a-sid"), "is not a SID"),
            (
                "DomainJoinConfig.Guid",
                json!("00000000-0000-0000-0000-000000000001"),
                "objectGUID",
            ),
            ("DomainJoinConfig.Guid", json!("zzz"), "is not a GUID"),
            (
                "DomainJoinConfig.NetBiosName",
                json!("WRONG"),
                "NetBIOS name is `TEST`",
            ),
            (
                "DomainJoinConfig.DnsName",
                json!("wrong.example"),
                "DNS name is `test.example`",
            ),
            (
                "DomainJoinConfig.DnsTreeName",
                json!("forest.example"),
                "forest root",
            ),
        ];
        for (field, value, want) in table {
            let mut spec = good_spec();
            let key = field.trim_start_matches("DomainJoinConfig.");
            spec["DomainJoinConfig"][key] = value;
            let report = run(spec, &facts(vec![]));
            assert_eq!(report.problems.len(), 1, "{field}: {:?}", report.problems);
            let p = &report.problems[0];
            assert_eq!(p.field, field);
            assert!(p.to_string().contains(want), "{field}: {p}");
            assert!(p.to_string().contains("fix: set it to"), "{field}: {p}");
        }
    }

    #[test]
    fn names_compare_case_insensitively_and_braced_guids_match() {
        let mut spec = good_spec();
        spec["DomainJoinConfig"]["NetBiosName"] = json!("test");
        spec["DomainJoinConfig"]["DnsName"] = json!("TEST.example.");
        spec["DomainJoinConfig"]["Guid"] = json!("{F1E2072F-DB10-4C71-A696-BC7EAC461A70}");
        assert_eq!(run(spec, &facts(vec![])).problems, vec![]);
    }

    #[test]
    fn missing_fields_are_problems() {
        let mut spec = good_spec();
        spec["DomainJoinConfig"] = json!({});
        let fields: Vec<String> = run(spec, &facts(vec![]))
            .problems
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "DomainJoinConfig.Sid",
                "DomainJoinConfig.Guid",
                "DomainJoinConfig.NetBiosName",
                "DomainJoinConfig.DnsName",
                "DomainJoinConfig.DnsTreeName",
                "DomainJoinConfig.MachineAccountName",
            ]
        );
    }

    #[test]
    fn missing_disabled_and_non_gmsa_accounts() {
        let mut user = gmsa("Bob", 0x200);
        user.object_classes = vec!["top".into(), "user".into()];
        let table: Vec<(Option<Account>, &str)> = vec![
            (None, "not found in test.example"),
            (Some(gmsa("WebApp1", 0x1002)), "is disabled"),
            (Some(user), "is not a group managed service account"),
        ];
        for (account, want) in table {
            let mut f = facts(vec![]);
            f.accounts = vec![("WebApp1".into(), account)];
            let report = run(good_spec(), &f);
            assert_eq!(report.problems.len(), 1, "{want}: {:?}", report.problems);
            assert_eq!(report.problems[0].field, "gMSA WebApp1");
            assert!(
                report.problems[0].message.contains(want),
                "{:?}",
                report.problems[0]
            );
        }
    }

    #[test]
    fn nodes_not_allowed_denied_or_unknown() {
        let f = facts(vec![
            node("NODE3", &[1106, 515]),
            node("EVIL", &[1200, 1104]),
            ("GHOST$".into(), None),
        ]);
        let report = run(good_spec(), &f);
        let got: Vec<(String, bool)> = report
            .problems
            .iter()
            .map(|p| (p.field.clone(), p.fix.is_empty()))
            .collect();
        let nodes: Vec<Option<&str>> = report.problems.iter().map(Problem::node).collect();
        assert_eq!(nodes, [Some("NODE3$"), Some("EVIL$"), Some("GHOST$")]);
        assert_eq!(
            got,
            vec![
                ("node NODE3$".into(), false),
                ("node EVIL$".into(), false),
                ("node GHOST$".into(), false),
            ]
        );
        assert!(report.problems[0]
            .message
            .contains("neither it nor any of its groups"));
        assert!(report.problems[1].message.contains("denied through"));
        assert!(report.problems[2].message.contains("no computer account"));
        assert_eq!(
            report.readers[0].nodes,
            vec![("NODE3$".into(), false), ("EVIL$".into(), false)]
        );
    }

    #[test]
    fn additional_and_foreign_accounts() {
        let mut spec = good_spec();
        spec["ActiveDirectoryConfig"]["GroupManagedServiceAccounts"] = json!([
            {"Name": "WebApp1", "Scope": "test.example"},
            {"Name": "Extra", "Scope": "TEST"},
            {"Name": "Far", "Scope": "other.example"}
        ]);
        let d = domain();
        let (ours, foreign) = spec_accounts(&CredSpec::from_value(&spec).expect("spec"), &d);
        assert_eq!(ours, vec!["WebApp1", "Extra"]);
        assert_eq!(foreign, vec!["Far@other.example"]);
        let mut f = facts(vec![]);
        f.accounts.push(("Extra".into(), None));
        let report = run(spec, &f);
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].field, "gMSA Extra");
        assert_eq!(report.notes.len(), 1);
        assert!(report.notes[0].contains("Far@other.example"));
    }

    #[test]
    fn no_membership_attribute() {
        let mut f = facts(vec![]);
        if let Some((_, Some(a))) = f.accounts.first_mut() {
            a.membership = None;
        }
        let report = run(good_spec(), &f);
        assert_eq!(report.problems.len(), 1);
        assert!(report.problems[0]
            .message
            .contains("msDS-GroupMSAMembership"));
    }
}
