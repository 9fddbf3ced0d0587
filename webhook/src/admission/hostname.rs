//! Random pod hostnames for GMSA pods (`RANDOM_HOSTNAME`).
//!
//! Windows uses the container's hostname as its NetBIOS computer name when authenticating
//! with a gMSA, so pods sharing one (every replica of a Deployment with `hostname` set) can
//! confuse Active Directory. The name must be at most 15 characters (NetBIOS limit), a valid
//! DNS label (lower case) and, for Windows, not all digits.

/// Length of a generated hostname (the NetBIOS maximum).
pub const HOSTNAME_LEN: usize = 15;

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A hostname of `HOSTNAME_LEN` characters from `seed` (pass 128 random bits): a lower-case
/// letter, then letters and digits. About 77 bits of the seed are used.
pub fn random_hostname(seed: u128) -> String {
    let mut rest = seed;
    let mut out = String::with_capacity(HOSTNAME_LEN);
    // First character: a letter, so the name is never all digits and never starts with one.
    out.push(char::from(ALPHABET[(rest % 26) as usize]));
    rest /= 26;
    for _ in 1..HOSTNAME_LEN {
        out.push(char::from(ALPHABET[(rest % 36) as usize]));
        rest /= 36;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_netbios_sized_lowercase_dns_labels() {
        for seed in [
            0u128,
            1,
            42,
            u128::MAX,
            0x1234_5678_9abc_def0_1234_5678_9abc_def0,
        ] {
            let h = random_hostname(seed);
            assert_eq!(h.len(), HOSTNAME_LEN, "{h}");
            assert!(
                h.chars().next().is_some_and(|c| c.is_ascii_lowercase()),
                "{h}"
            );
            assert!(
                h.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{h}"
            );
        }
    }

    #[test]
    fn different_seeds_give_different_names() {
        assert_ne!(random_hostname(1), random_hostname(2));
        assert_ne!(random_hostname(1), random_hostname(1 + 26));
        assert_eq!(random_hostname(7), random_hostname(7));
    }
}
