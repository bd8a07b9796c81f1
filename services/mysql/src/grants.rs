//! Quoting for MySQL statements, and the database patterns of GRANT.
//!
//! In a database-level GRANT, `_` and `%` in the database name are wildcards: a grant on
//! `app_1` also opens `app11` and `appx1`. Every grant here escapes them, so that a grant
//! covers exactly one name (single database) or exactly the names that start with one literal
//! prefix (multiple databases), and never another app's.

/// `name` as a backquoted identifier.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `value` as a single-quoted string literal (backslashes and quotes escaped, which is right
/// whether or not the server runs with NO_BACKSLASH_ESCAPES for `''`; derived values never
/// contain a backslash anyway).
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// `name` with the GRANT wildcards `_` and `%` (and the escape `\` itself) escaped.
fn escape_wildcards(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if matches!(c, '_' | '%' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The database part of `GRANT … ON <here>.*` that matches exactly `database`.
pub fn exactly(database: &str) -> String {
    ident(&escape_wildcards(database))
}

/// The database part of `GRANT … ON <here>.*` that matches every name starting with `prefix`.
pub fn starting_with(prefix: &str) -> String {
    ident(&format!("{}%", escape_wildcards(prefix)))
}

/// A `LIKE` pattern (default escape `\`) matching every name starting with `prefix`.
pub fn like_prefix(prefix: &str) -> String {
    format!("{}%", escape_wildcards(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_patterns_escape_every_wildcard() {
        assert_eq!(exactly("app_a_01"), r"`app\_a\_01`");
        assert_eq!(starting_with("app_a_01_"), r"`app\_a\_01\_%`");
        assert_eq!(exactly("50%off"), r"`50\%off`");
        assert_eq!(like_prefix("app_x_"), r"app\_x\_%");
    }

    #[test]
    fn quoting_doubles_quote_characters() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\b"), r"'a\\b'");
    }
}
