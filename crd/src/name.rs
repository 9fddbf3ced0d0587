//! Resource names: the default name derived from a spec (as the reference chart does) and the
//! RFC 1123 check the API server applies to custom resource names.

use crate::credspec::CredSpec;

/// Why a resource name is not usable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The spec has no `DomainJoinConfig.MachineAccountName` to derive a name from.
    #[error("cannot derive a resource name: DomainJoinConfig.MachineAccountName is missing; pass --name")]
    NoAccount,
    /// The name is not an RFC 1123 subdomain.
    #[error("\"{name}\" is not a valid resource name: {reason}")]
    Invalid {
        /// The offending name.
        name: String,
        /// What rule it breaks.
        reason: &'static str,
    },
}

/// The default resource name for a spec, as the reference chart names it: the lower-cased
/// `DomainJoinConfig.MachineAccountName` with `_` turned into `-`, checked by [`check_name`].
pub fn default_name(spec: &CredSpec) -> Result<String, NameError> {
    let account = spec
        .machine_account_name()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or(NameError::NoAccount)?;
    let name = account.to_lowercase().replace('_', "-");
    check_name(&name)?;
    Ok(name)
}

/// Checks `name` is an RFC 1123 subdomain (what Kubernetes requires of a custom resource's
/// name): at most 253 characters, lower-case letters, digits, `-` and `.`, each dot-separated
/// label starting and ending with a letter or digit.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let invalid = |reason| {
        Err(NameError::Invalid {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 253 {
        return invalid("it is longer than 253 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return invalid("only lower-case letters, digits, '-' and '.' are allowed");
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    for label in name.split('.') {
        if !alnum(label.bytes().next()) || !alnum(label.bytes().last()) {
            return invalid("it must start and end with a letter or digit (also around each '.')");
        }
    }
    Ok(())
}

/// Whether `name` is an RFC 1123 subdomain, i.e. [`check_name`] accepts it: whether any object
/// can have this name (the webhook asks nothing of the API server about other names).
pub fn is_subdomain(name: &str) -> bool {
    check_name(name).is_ok()
}

/// Whether `name` is an RFC 1123 label (what Kubernetes requires of a namespace name): at most
/// 63 characters of lower-case letters, digits and `-`, starting and ending with a letter or
/// digit.
pub fn is_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_subdomain(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credspec::DomainJoinConfig;

    fn spec(account: Option<&str>) -> CredSpec {
        CredSpec {
            domain_join_config: Some(DomainJoinConfig {
                machine_account_name: account.map(str::to_string),
                ..DomainJoinConfig::default()
            }),
            ..CredSpec::default()
        }
    }

    #[test]
    fn derivation_table() {
        let rows: [(Option<&str>, Result<&str, &str>); 9] = [
            (Some("WebApp01"), Ok("webapp01")),
            (Some("Web_App_01"), Ok("web-app-01")),
            (Some(" gmsa-web "), Ok("gmsa-web")),
            (Some("web.app"), Ok("web.app")),
            (Some("_web"), Err("start and end")),
            (Some("WebApp01$"), Err("only lower-case")),
            (Some("Web App"), Err("only lower-case")),
            (Some(""), Err("MachineAccountName is missing")),
            (None, Err("MachineAccountName is missing")),
        ];
        for (account, expected) in rows {
            let got = default_name(&spec(account));
            match (got, expected) {
                (Ok(name), Ok(want)) => assert_eq!(name, want, "{account:?}"),
                (Err(err), Err(fragment)) => {
                    assert!(err.to_string().contains(fragment), "{account:?}: {err}")
                }
                (got, want) => panic!("{account:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn no_spec_section_means_no_account() {
        assert_eq!(
            default_name(&CredSpec::default()),
            Err(NameError::NoAccount)
        );
    }

    #[test]
    fn check_name_limits() {
        assert!(check_name(&"a".repeat(253)).is_ok());
        assert!(check_name(&"a".repeat(254)).is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name("a-.b").is_err());
        assert!(check_name("9lives").is_ok());
    }

    #[test]
    fn subdomains_and_labels_table() {
        let long = "a".repeat(254);
        for (name, ok) in [
            ("webapp01", true),
            ("web-app.01", true),
            ("a", true),
            ("", false),
            ("WebApp01", false),
            ("-a", false),
            ("a-", false),
            ("a/b", false),
            ("a/../../x", false),
            ("a?watch=true", false),
            ("a%2Fb", false),
            ("a b", false),
            ("é", false),
            (long.as_str(), false),
            (&long[..253], true),
        ] {
            assert_eq!(is_subdomain(name), ok, "{name:?}");
        }
        for (name, ok) in [
            ("demo", true),
            ("kube-system", true),
            ("a.b", false),
            ("", false),
            ("Demo", false),
            ("a/b", false),
            (&long[..63], true),
            (&long[..64], false),
        ] {
            assert_eq!(is_label(name), ok, "{name:?}");
        }
    }
}
