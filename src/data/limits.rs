//! The memory an input may make mentor allocate. Every buffer whose size comes from
//! input (a decoded or resized photo, a dataset resized in memory, a checkpoint's input
//! shape) is checked against one limit before it is allocated, so a hostile or mistaken
//! file is one clear error instead of an abort: half of this machine's memory, or
//! `$MENTOR_MEMORY_LIMIT` (bytes, or with a `K`, `M`, `G` or `T` suffix) to raise or
//! lower it.

use super::DataError;

/// The environment variable that sets the limit.
pub const MEMORY_LIMIT_VAR: &str = "MENTOR_MEMORY_LIMIT";

/// The limit when neither the variable nor the machine's memory is known: 8 GiB.
const FALLBACK_LIMIT: u64 = 8 << 30;

/// This machine's memory in bytes (`MemTotal` of `/proc/meminfo`), if known.
pub fn host_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The most resident memory this process has had so far (Linux's `VmHWM`), in bytes;
/// `None` where the system does not say.
pub fn peak_resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Parses a byte count: digits with an optional `K`, `M`, `G` or `T` (powers of 1024;
/// a trailing `B` or `iB` allowed).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let (digits, shift) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 10),
        'M' => (&t[..t.len() - 1], 20),
        'G' => (&t[..t.len() - 1], 30),
        'T' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// The most bytes one input-sized buffer may take: `$MENTOR_MEMORY_LIMIT`, else half
/// of this machine's memory. A variable that is not a byte count is an error naming it.
pub fn memory_limit() -> Result<u64, DataError> {
    match std::env::var(MEMORY_LIMIT_VAR) {
        Ok(text) => parse_bytes(&text).filter(|&n| n > 0).ok_or_else(|| {
            DataError::Invalid(format!(
                "{MEMORY_LIMIT_VAR}={text:?} is not a byte count (e.g. 16G, 512M, 1000000)"
            ))
        }),
        Err(_) => Ok(host_memory_bytes().map_or(FALLBACK_LIMIT, |m| m / 2)),
    }
}

/// Checks that `bytes` for `what` (e.g. "resizing photo.jpg to 256") fit the limit,
/// before they are allocated.
pub fn check_allocation(what: &str, bytes: u128) -> Result<(), DataError> {
    let limit = memory_limit()?;
    if bytes > u128::from(limit) {
        return Err(DataError::TooLarge(format!(
            "{what} needs about {} of memory, over the limit of {} (half this machine's memory; set {MEMORY_LIMIT_VAR} to raise it)",
            in_words(bytes),
            in_words(u128::from(limit))
        )));
    }
    Ok(())
}

/// `bytes` as GB or MB with one decimal.
fn in_words(bytes: u128) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_with_or_without_a_suffix() {
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("16G"), Some(16 << 30));
        assert_eq!(parse_bytes("512 MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("2kb"), Some(2048));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("-1G"), None);
        assert_eq!(parse_bytes("99999999999T"), None);
    }

    #[test]
    fn an_allocation_over_the_limit_is_refused_naming_what_and_how_to_raise_it() {
        // Nothing of the machine's is this large; the default limit is at most half of it.
        let e = check_allocation("resizing x.png to 100000", 1 << 80)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.png") && e.contains(MEMORY_LIMIT_VAR), "{e}");
        assert!(check_allocation("a small buffer", 1000).is_ok());
    }
}
