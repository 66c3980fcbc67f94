//! One stable sort for the crate. `slice::sort_by` is monomorphised per element type (≈ 4 KB of
//! `.wasm` each: quicksort, drift, merges, small sorts); [`stable_sort_by`] sorts indices with a
//! comparator behind `&mut dyn`, so every caller shares ONE instance of the standard sort and
//! only the small permutation step is generic (docs/PERFORMANCE.md, "Sizes"). Same result as
//! `items.sort_by(cmp)`: stable, equal elements keep their order. For configuration-time sorts
//! (price tables, tiers), not for per-request paths.

use alloc::vec::Vec;
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn sorts_like_the_standard_stable_sort() {
        let mut ours = vec![(3, 'a'), (1, 'b'), (3, 'c'), (0, 'd'), (1, 'e'), (2, 'f')];
        let mut std = ours.clone();
        stable_sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
        std.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(ours, std);
        assert_eq!(
            ours,
            [(0, 'd'), (1, 'b'), (1, 'e'), (2, 'f'), (3, 'a'), (3, 'c')]
        );
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
