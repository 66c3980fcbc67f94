//! One stable sort for the crate. `slice::sort_by` is monomorphised per element type (≈ 4 KB of
//! `.wasm` each: quicksort, drift, merges, small sorts); [`stable_sort_by`] sorts indices with a
//! comparator behind `&mut dyn`, so every caller shares ONE instance of the standard sort and
//! only the small permutation step is generic (docs/PERFORMANCE.md, "Sizes"). Same result as
//! `items.sort_by(cmp)`: stable, equal elements keep their order. For configuration-time sorts
//! (price tables, tiers), not for per-request paths.
//!
//! Also a string-keyed map as a sorted `Vec<(String, V)>` ([`sorted_get`], [`sorted_insert`]):
//! a `BTreeMap` costs ≈ 4 KB of `.wasm` per key/value type (insert, search, drop, clone);
//! for the few entries of a configuration a sorted list does the same in a few hundred bytes,
//! iterating in the same key order.

use alloc::{string::String, vec::Vec};
use core::cmp::Ordering;

/// Sorts `items` by `cmp`, stably (as `slice::sort_by`).
pub fn stable_sort_by<T>(items: &mut Vec<T>, mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if items.len() < 2 {
        return;
    }
    let order = sorted_indices(items.len(), &mut |a, b| cmp(&items[a], &items[b]));
    let mut slots: Vec<Option<T>> = core::mem::take(items).into_iter().map(Some).collect();
    items.extend(
        order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take)),
    );
}

/// `0..len` stably sorted by `cmp` on indices: the one monomorphic sort.
fn sorted_indices(len: usize, cmp: &mut dyn FnMut(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|a, b| cmp(*a, *b));
    order
}

/// The value under `key` in a list sorted by key (kept so by [`sorted_insert`]).
pub fn sorted_get<'a, V>(list: &'a [(String, V)], key: &str) -> Option<&'a V> {
    let at = list.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok()?;
    list.get(at).map(|(_, v)| v)
}

/// Sets `key` to `value` in a list sorted by key (replacing, as `BTreeMap::insert` does).
pub fn sorted_insert<V>(list: &mut Vec<(String, V)>, key: String, value: V) {
    match list.binary_search_by(|(k, _)| k.as_str().cmp(key.as_str())) {
        Ok(at) => list[at].1 = value,
        Err(at) => list.insert(at, (key, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn sorts_like_the_standard_stable_sort() {
        let mut ours = vec![(3, 'a'), (1, 'b'), (3, 'c'), (0, 'd'), (1, 'e'), (2, 'f')];
        let mut std = ours.clone();
        stable_sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
        std.sort_by_key(|a| a.0);
        assert_eq!(ours, std);
        assert_eq!(
            ours,
            [(0, 'd'), (1, 'b'), (1, 'e'), (2, 'f'), (3, 'a'), (3, 'c')]
        );
    }

    #[test]
    fn a_sorted_list_answers_like_a_map() {
        let mut list: Vec<(String, u8)> = Vec::new();
        for (k, v) in [("b", 1), ("a", 2), ("c", 3), ("a", 4)] {
            sorted_insert(&mut list, k.into(), v);
        }
        let keys: Vec<&str> = list.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(sorted_get(&list, "a"), Some(&4));
        assert_eq!(sorted_get(&list, "c"), Some(&3));
        assert_eq!(sorted_get(&list, "d"), None);
    }

    #[test]
    fn empty_and_single_lists_are_left_alone() {
        let mut none: Vec<u8> = vec![];
        stable_sort_by(&mut none, u8::cmp);
        assert!(none.is_empty());
        let mut one = vec![7];
        stable_sort_by(&mut one, u8::cmp);
        assert_eq!(one, [7]);
    }
}
