//! The scheduler addon's cron syntax, as the reference defines it: five fields (minute 0-59,
//! hour 0-23, day of month 1-31, month 0-11, day of week 0-6), no seconds; each field a list of
//! `*`, `N`, `N-M`, each optionally with a `/STEP`.
//!
//! Hand-written on purpose: cron crates use the usual 1-12 months and accept seconds or names,
//! which the platform rejects.

use crate::limits::quote;

/// The fields in order, with their allowed ranges.
const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 0, 11),
    ("day of week", 0, 6),
];

/// Checks `schedule`; the error says which field is wrong and why.
pub fn validate(schedule: &str) -> Result<(), String> {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        return Err(format!(
            "needs 5 fields (minute hour day-of-month month day-of-week), got {}; seconds are \
             not supported",
            fields.len()
        ));
    }
    for (field, (name, min, max)) in fields.iter().zip(FIELDS) {
        for item in field.split(',') {
            validate_item(item, min, max)
                .map_err(|reason| format!("{name} field {}: {reason}", quote(field)))?;
        }
    }
    Ok(())
}

fn validate_item(item: &str, min: u32, max: u32) -> Result<(), String> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (item, None),
    };
    if let Some(step) = step {
        let step = number(step)?;
        if step == 0 || step > max {
            return Err(format!("step {step} must be between 1 and {max}"));
        }
    }
    if range == "*" {
        return Ok(());
    }
    let (low, high) = match range.split_once('-') {
        Some((low, high)) => (number(low)?, number(high)?),
        None => {
            let value = number(range)?;
            (value, value)
        }
    };
    for value in [low, high] {
        if !(min..=max).contains(&value) {
            return Err(format!("{value} is outside {min}-{max}"));
        }
    }
    if low > high {
        return Err(format!("range {low}-{high} runs backwards"));
    }
    Ok(())
}

fn number(text: &str) -> Result<u32, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{} is not a number", quote(text)));
    }
    text.parse()
        .map_err(|_| format!("{} is not a number", quote(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_references_forms() {
        for schedule in [
            "*/5 * * * *",
            "0 3 * * *",
            "1-3,5 * * * *",
            "0 0 1 0 0",
            "59 23 31 11 6",
            "*/2 */4 1-15/2 0-11/3 1-5",
            "  0   12 * * 0  ",
        ] {
            assert_eq!(validate(schedule), Ok(()), "{schedule}");
        }
    }

    #[test]
    fn refuses_what_the_reference_excludes() {
        let cases = [
            ("* * * *", "needs 5 fields"),
            ("0 * * * * *", "seconds are not supported"),
            ("60 * * * *", "minute field \"60\": 60 is outside 0-59"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day of month field \"0\": 0 is outside 1-31"),
            ("* * * 12 *", "month field \"12\": 12 is outside 0-11"),
            ("* * * * 7", "day of week field"),
            ("5-1 * * * *", "runs backwards"),
            ("*/0 * * * *", "step 0"),
            ("a * * * *", "\"a\" is not a number"),
            ("* * * JAN *", "not a number"),
            ("1,,2 * * * *", "\"\" is not a number"),
            ("-1 * * * *", "not a number"),
            ("", "needs 5 fields"),
        ];
        for (schedule, expected) in cases {
            let error = validate(schedule).err().unwrap_or_default();
            assert!(error.contains(expected), "{schedule:?}: {error:?}");
        }
    }
}
