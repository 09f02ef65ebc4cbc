//! Test support: seeded damaged copies of a valid file (cuts, changed bytes, random
//! bytes) for the "never panics" loops over every reader.

/// A xorshift64 stream from `seed` (non-zero): the same bytes on every machine.
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.max(1);
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// `count` damaged copies of `good`, in turn: cut at a random length, up to 4 bytes
/// changed (the first one within the first `header` bytes), and up to 200 random bytes.
pub(crate) fn damaged_copies(good: &[u8], count: usize, header: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut next = xorshift(seed);
    (0..count)
        .map(|case| match case % 3 {
            0 => good[..next() as usize % (good.len() + 1)].to_vec(),
            1 => {
                let mut bytes = good.to_vec();
                let first = next() as usize % header.clamp(1, bytes.len());
                bytes[first] = next() as u8;
                for _ in 0..next() % 4 {
                    let at = next() as usize % bytes.len();
                    bytes[at] = next() as u8;
                }
                bytes
            }
            _ => (0..next() % 200).map(|_| next() as u8).collect(),
        })
        .collect()
}
