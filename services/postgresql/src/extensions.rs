//! The extension whitelist of the postgresql addon: exactly the reference's list.
//!
//! The list lives in `extension-whitelist.txt` beside `Cargo.toml`, which the scripts under
//! `deploy/` also read to configure `pgextwlist`, so the service and the server agree.

/// The whitelist file, one extension per line.
const WHITELIST_FILE: &str = include_str!("../extension-whitelist.txt");

/// Every extension an app may have, in the reference's order.
pub fn whitelist() -> Vec<&'static str> {
    WHITELIST_FILE
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
}

/// Whether `name` is on the whitelist.
pub fn is_whitelisted(name: &str) -> bool {
    whitelist().contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist_is_the_references_list() {
        let list = whitelist();
        assert_eq!(list.len(), 23);
        for name in [
            "postgis",
            "hstore",
            "vector",
            "uuid-ossp",
            "pg_stat_statements",
        ] {
            assert!(is_whitelisted(name), "{name}");
        }
        for name in ["adminpack", "plperlu", "dblink", "", "postgis;"] {
            assert!(!is_whitelisted(name), "{name}");
        }
    }
}
