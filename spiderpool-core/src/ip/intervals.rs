//! Sorted lists of disjoint inclusive `u128` intervals.
//!
//! A normalised list is sorted, and no two intervals overlap or touch (`[1,2]` and `[3,4]` are
//! stored as `[1,4]`). Used for range lists and for runs of full 2^32-address chunks in
//! [`super::IpSet`].

/// One inclusive interval `[start, end]`, `start <= end`.
pub(crate) type Interval = (u128, u128);

/// Sorts and coalesces intervals (overlapping or adjacent ones are joined).
pub(crate) fn normalize(mut list: Vec<Interval>) -> Vec<Interval> {
    list.sort_unstable();
    let mut out: Vec<Interval> = Vec::with_capacity(list.len());
    for (start, end) in list {
        match out.last_mut() {
            Some(last) if last.1 == u128::MAX || start <= last.1 + 1 => {
                last.1 = last.1.max(end);
            }
            _ => out.push((start, end)),
        }
    }
    out
}

/// Union of two normalised lists.
pub(crate) fn union(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut all = Vec::with_capacity(a.len() + b.len());
    all.extend_from_slice(a);
    all.extend_from_slice(b);
    normalize(all)
}

/// Intersection of two normalised lists.
pub(crate) fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if start <= end {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// `a` minus `b`, both normalised.
pub(crate) fn subtract(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(start, end) in a {
        let mut cur = start;
        let mut alive = true;
        while j < b.len() && b[j].1 < cur {
            j += 1;
        }
        let mut k = j;
        while alive && k < b.len() && b[k].0 <= end {
            if b[k].0 > cur {
                out.push((cur, b[k].0 - 1));
            }
            if b[k].1 >= end {
                alive = false;
            } else {
                cur = b[k].1 + 1;
                k += 1;
            }
        }
        if alive {
            out.push((cur, end));
        }
    }
    out
}

/// Whether `value` lies in one of the intervals.
pub(crate) fn contains(list: &[Interval], value: u128) -> bool {
    let idx = list.partition_point(|&(_, end)| end < value);
    list.get(idx).is_some_and(|&(start, _)| start <= value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn expand(list: &[Interval]) -> BTreeSet<u128> {
        list.iter().flat_map(|&(s, e)| s..=e).collect()
    }

    fn arb_list() -> impl Strategy<Value = Vec<Interval>> {
        prop::collection::vec((0u128..60, 0u128..8).prop_map(|(s, l)| (s, s + l)), 0..8)
    }

    #[test]
    fn normalize_joins_adjacent_and_handles_the_top() {
        assert_eq!(
            normalize(vec![(3, 4), (1, 2), (9, 9)]),
            vec![(1, 4), (9, 9)]
        );
        assert_eq!(
            normalize(vec![
                (u128::MAX - 1, u128::MAX),
                (0, 0),
                (u128::MAX, u128::MAX)
            ]),
            vec![(0, 0), (u128::MAX - 1, u128::MAX)]
        );
        assert_eq!(subtract(&[(0, u128::MAX)], &[(5, u128::MAX)]), vec![(0, 4)]);
    }

    proptest! {
        #[test]
        fn operations_match_a_btreeset(a in arb_list(), b in arb_list()) {
            let (na, nb) = (normalize(a), normalize(b));
            let (sa, sb) = (expand(&na), expand(&nb));
            prop_assert_eq!(normalize(na.clone()), na.clone());
            prop_assert_eq!(expand(&union(&na, &nb)), &sa | &sb);
            prop_assert_eq!(expand(&intersect(&na, &nb)), &sa & &sb);
            prop_assert_eq!(expand(&subtract(&na, &nb)), &sa - &sb);
            for v in 0..70u128 {
                prop_assert_eq!(contains(&na, v), sa.contains(&v));
            }
            let u = union(&na, &nb);
            prop_assert_eq!(normalize(u.clone()), u);
        }
    }
}
