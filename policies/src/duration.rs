//! Duration strings as operators write them in policy files: `"500ms"`, `"5s"`, `"2m"`,
//! `"1h"`, `"1d"`, and sums such as `"1h30m"`.

use std::time::Duration;

/// Parses a duration string. Returns a readable reason on failure.
///
/// Grammar: one or more `<digits><unit>` groups, unit one of `ms`, `s`, `m`, `h`, `d`.
/// A bare `"0"` is accepted as zero. Signs, fractions, spaces and overflow are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration; write a number with a unit (ms, s, m, h, d), e.g. \"5s\", \"2m\", \"500ms\""
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(bad());
    }
    let mut total_ms: u64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let number: u64 = text[start..i].parse().map_err(|_| bad())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let factor: u64 = match &text[unit_start..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        let part = number.checked_mul(factor).ok_or_else(bad)?;
        total_ms = total_ms.checked_add(part).ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way [`parse_duration`] reads it (`5s`, `2m`, `1h30m`, `500ms`).
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let cases: &[(&str, Option<u64>)] = &[
            ("500ms", Some(500)),
            ("5s", Some(5_000)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("1d", Some(86_400_000)),
            ("1h30m", Some(5_400_000)),
            ("0", Some(0)),
            ("0s", Some(0)),
            ("", None),
            ("5", None),
            ("-5s", None),
            ("5 s", None),
            ("1.5s", None),
            ("5x", None),
            ("s", None),
            ("99999999999999999999s", None),
            ("18446744073709551615d", None),
        ];
        for (text, want) in cases {
            let got = parse_duration(text).ok().map(|d| d.as_millis() as u64);
            assert_eq!(got, *want, "{text:?}");
        }
        for text in ["500ms", "5s", "2m", "1h30m", "1d", "1m1s500ms"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
