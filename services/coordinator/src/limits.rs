//! What one app may declare, and how much of a caller's input an error message may echo.
//!
//! The bounds are constants: they protect the coordinator and its callers (a status message
//! travels in one HTTP/2 header, and clients refuse headers over a few KB), and a real
//! manifest is far below every one of them.

/// Longest `app_domain`, in bytes (the DNS limit).
pub use fleet_shared::domain::MAX_DOMAIN_BYTES;
/// Most tasks under `scheduler`.
pub const MAX_SCHEDULER_TASKS: usize = 100;
/// Longest scheduler task name, in bytes.
pub const MAX_TASK_NAME_BYTES: usize = 128;
/// Longest string option (a redirect URI, a path, a command, a locale...), in bytes.
pub const MAX_OPTION_BYTES: usize = 2048;
/// Most values in the whole `addons` object: every object key and list item, at any depth.
pub const MAX_MANIFEST_VALUES: usize = 1000;
/// Largest `addons` object, in bytes of its protobuf encoding.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;

/// Most problems one INVALID_ARGUMENT lists; the rest are counted.
pub const MAX_LISTED_PROBLEMS: usize = 20;
/// Longest line of one listed problem, in bytes, so twenty fit in a status message.
pub const MAX_PROBLEM_BYTES: usize = 190;
/// Longest caller value (or key) an error message quotes, in characters.
pub const MAX_QUOTED_CHARS: usize = 64;
/// Longest status message the coordinator returns (its own or an addon service's), in bytes.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 4096;
/// Longest part of an addon service's message relayed in a status, in bytes.
pub const MAX_RELAYED_MESSAGE_BYTES: usize = 1024;

/// `value` quoted for an error message: at most [`MAX_QUOTED_CHARS`] characters, escaped to
/// printable ASCII, then `…` if cut.
pub fn quote(value: &str) -> String {
    format!("\"{}\"", shorten(value))
}

/// `value` (a caller's key) as a segment of a field path: like [`quote`] without the quotes,
/// so `addons.mysql` reads as before.
pub fn segment(value: &str) -> String {
    shorten(value)
}

fn shorten(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    for c in chars.by_ref().take(MAX_QUOTED_CHARS) {
        if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// `message` cut to at most `max` bytes (on a character boundary), ending in `…` if cut.
pub fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_owned();
    }
    let ellipsis = '…';
    let mut end = max.saturating_sub(ellipsis.len_utf8());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_short_and_ascii() {
        assert_eq!(quote("chat.example.com"), "\"chat.example.com\"");
        let long = quote(&"é".repeat(9000));
        assert!(long.len() < 64 * 8 + 8 && long.ends_with("…\""), "{long}");
        assert_eq!(segment("a\"b\n"), "a\\\"b\\n");
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"é".repeat(100), 11);
        assert!(cut.len() <= 11 && cut.ends_with('…'), "{cut}");
    }
}
