//! Byte search. On x86_64 with SSE2, which the architecture guarantees: `memchr`'s generic
//! entry points first detect the CPU's features at run time, and on a virtual machine the
//! `cpuid` instructions that takes trap to the hypervisor (measured here: ~50 µs, paid by every
//! plugin process). Elsewhere, `memchr`'s generic search.

/// The position of the first `needle` in `hay`.
pub(super) fn find(needle: u8, hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(one) = memchr::arch::x86_64::sse2::memchr::One::new(needle) {
        return one.find(hay);
    }
    memchr::memchr(needle, hay)
}

/// The position of the first of `a`, `b` or `c` in `hay`.
pub(super) fn find3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(three) = memchr::arch::x86_64::sse2::memchr::Three::new(a, b, c) {
        return three.find(hay);
    }
    memchr::memchr3(a, b, c, hay)
}

/// The positions of the first `n` occurrences of `needle` in `hay` (fewer if it has fewer).
pub(super) fn find_n(needle: u8, hay: &[u8], n: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    while out.len() < n {
        match find(needle, &hay[at..]) {
            Some(p) => {
                out.push(at + p);
                at += p + 1;
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{find, find3, find_n};

    #[test]
    fn finds_what_a_scan_finds() {
        let hay: Vec<u8> = (0..300u32).map(|i| (i * 7 % 13) as u8 + b'a').collect();
        for needle in b'a'..=b'o' {
            let want = hay.iter().position(|b| *b == needle);
            assert_eq!(find(needle, &hay), want, "{needle}");
            let all: Vec<usize> = (0..hay.len()).filter(|i| hay[*i] == needle).collect();
            assert_eq!(find_n(needle, &hay, 5), all[..all.len().min(5)], "{needle}");
        }
        let want = hay.iter().position(|b| b"mno".contains(b));
        assert_eq!(find3(b'm', b'n', b'o', &hay), want);
        assert_eq!(find(b'x', b""), None);
        assert_eq!(find_n(b'x', b"", 3), Vec::<usize>::new());
    }
}
