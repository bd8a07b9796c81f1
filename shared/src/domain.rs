//! App domains: the host names apps are served on, checked by one rule wherever a request
//! carries one.

/// The longest domain name, in bytes.
pub const MAX_DOMAIN_BYTES: usize = 253;

/// Whether `host` is a DNS name: at most [`MAX_DOMAIN_BYTES`], dot-separated labels of 1-63
/// letters, digits and `-`, none starting or ending with `-`.
pub fn is_domain_name(host: &str) -> bool {
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    !host.is_empty() && host.len() <= MAX_DOMAIN_BYTES && host.split('.').all(valid_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names() {
        for good in ["chat.example.com", "a", "x-1.b2", &"a".repeat(63)] {
            assert!(is_domain_name(good), "{good}");
        }
        let long = ["a"; 128].join(".");
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a_b",
            "x.com:80",
            &"a".repeat(64),
            &long,
        ] {
            assert!(!is_domain_name(bad), "{bad}");
        }
    }
}
