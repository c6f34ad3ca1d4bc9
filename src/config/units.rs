//! Durations and sizes written as Prometheus writes them: `1h30m`, `500ms`,
//! `10MiB`. Our own parser, so that `check-config` accepts exactly what
//! Prometheus accepts (humantime also takes `15 sec`, which Prometheus refuses).

use std::time::Duration;

/// Units of a duration, largest first: Prometheus requires this order.
const DURATION_UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses `0` or one or more `<integer><unit>` terms with units in
/// descending order, each at most once.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("{text:?} is not a duration such as 500ms, 15s, 5m or 1h30m");
    let mut rest = text;
    let mut total_ms: u64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let Some(offset) = DURATION_UNITS[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)
        else {
            return Err(bad());
        };
        let (_, unit_ms) = DURATION_UNITS[next_unit + offset];
        next_unit += offset + 1;
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    }
    if next_unit == 0 {
        return Err(bad());
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis() as u64;
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, unit_ms) in DURATION_UNITS {
        // Years and weeks read oddly in messages; days are enough.
        if matches!(name, "y" | "w") {
            continue;
        }
        if ms >= unit_ms {
            out.push_str(&(ms / unit_ms).to_string());
            out.push_str(name);
            ms %= unit_ms;
        }
    }
    out
}

/// Parses a size: plain bytes (`1048576`) or a number with a unit. As in
/// Prometheus, `KB`, `MB` and `GB` are powers of 1024, like `KiB`, `MiB`
/// and `GiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size such as 512KiB, 10MiB or 1GiB");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad());
    }
    let number: u64 = text[..digits].parse().map_err(|_| bad())?;
    let multiplier: u64 = match &text[digits..] {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        _ => return Err(bad()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large a size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_prometheus_parses_them() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration("1d2h3m4s5ms"),
            Ok(Duration::from_millis(93_784_005))
        );
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_prometheus_refuses_are_refused() {
        for text in [
            "", "15", "15 sec", "1.5s", "-1s", "30m1h", "1s1s", "1m ", "s", "1x",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} was accepted");
        }
        assert!(parse_duration("99999999999999999y").is_err());
    }

    #[test]
    fn formatted_durations_read_back() {
        for ms in [0, 1, 999, 1000, 15_000, 5_400_000, 93_784_005] {
            let duration = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2048"), Ok(2048));
        for text in ["", "MiB", "10 MiB", "1.5MiB", "10mb", "-1"] {
            assert!(parse_size(text).is_err(), "{text:?} was accepted");
        }
    }
}
