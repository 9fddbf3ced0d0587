//! Text shapes of GUIDs, shared by the CCG catalogue (`ccg`) and validation (`validate`).

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex, any case, no braces).
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`.
pub fn is_braced_guid(s: &str) -> bool {
    s.strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .is_some_and(is_guid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_shapes() {
        assert!(is_guid("244818AE-87ca-4fcd-92ec-e79e5252348a"));
        assert!(!is_guid("{244818ae-87ca-4fcd-92ec-e79e5252348a}"));
        assert!(is_braced_guid("{244818ae-87ca-4fcd-92ec-e79e5252348a}"));
        assert!(!is_braced_guid("{244818ae87ca4fcd92ece79e5252348a}"));
        assert!(!is_guid("244818ae-87ca-4fcd-92ec-e79e5252348g"));
    }
}
