//! A map from [`Class`] to a value, stored as an array indexed by the class: what the summary
//! keeps per class (counts, latency, rate series) and updates once or twice per event, where
//! two `BTreeMap` lookups per event were (the pipeline figure, old and new binaries
//! interleaved: 24.3–25.0 M → 25.4–26.4 M events/s). Iteration is in class order, as the
//! `BTreeMap` it replaces iterated (and as reports list kinds).
//!
//! Written by hand: enum-map would need a derive on `Class` (in the event module, for a
//! report's storage) and `Option` values with the same absent-skipping iteration written
//! around it; the whole map is this file.

use crate::event::Class;

#[derive(Clone, Debug, PartialEq)]
pub struct ByClass<V> {
    slots: [Option<V>; Class::COUNT],
}

impl<V> Default for ByClass<V> {
    fn default() -> Self {
        ByClass {
            slots: std::array::from_fn(|_| None),
        }
    }
}

impl<V> ByClass<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, class: &Class) -> Option<&V> {
        self.slots[*class as usize].as_ref()
    }

    pub fn contains_key(&self, class: &Class) -> bool {
        self.get(class).is_some()
    }

    /// The value of `class`, made by `make` if absent.
    pub fn get_or_insert_with(&mut self, class: Class, make: impl FnOnce() -> V) -> &mut V {
        self.slots[class as usize].get_or_insert_with(make)
    }

    /// Sets the value of `class`, returning the one it replaces.
    pub fn insert(&mut self, class: Class, value: V) -> Option<V> {
        self.slots[class as usize].replace(value)
    }

    /// The classes present, with their values, in class order.
    pub fn iter(&self) -> impl Iterator<Item = (&Class, &V)> {
        Class::ALL
            .iter()
            .zip(&self.slots)
            .filter_map(|(c, v)| v.as_ref().map(|v| (c, v)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Class> {
        self.iter().map(|(c, _)| c)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten()
    }
}

impl<V: Default> ByClass<V> {
    /// The value of `class`, a default one if absent.
    pub fn or_default(&mut self, class: Class) -> &mut V {
        self.get_or_insert_with(class, V::default)
    }
}

impl<V> std::ops::Index<&Class> for ByClass<V> {
    type Output = V;

    /// Panics when `class` is absent, as `BTreeMap`'s index does.
    fn index(&self, class: &Class) -> &V {
        self.get(class)
            .unwrap_or_else(|| panic!("no {class:?} in this map"))
    }
}

impl<'a, V> IntoIterator for &'a ByClass<V> {
    type Item = (&'a Class, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a Class, &'a V)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn it_lists_what_a_btreemap_would_in_the_same_order() {
        // Every subset of the classes, inserted in reverse: the same keys, values and order.
        for mask in 0u32..(1 << Class::COUNT) {
            let mut m = ByClass::new();
            let mut b = BTreeMap::new();
            for (i, c) in Class::ALL.iter().enumerate().rev() {
                if mask & (1 << i) != 0 {
                    m.insert(*c, i);
                    b.insert(*c, i);
                }
            }
            assert!(m.iter().eq(b.iter()), "{mask:b}");
            for c in Class::ALL {
                assert_eq!(m.get(&c), b.get(&c));
            }
        }
    }

    #[test]
    fn or_default_and_insert_keep_one_value_per_class() {
        let mut m: ByClass<u64> = ByClass::new();
        *m.or_default(Class::PageFree) += 2;
        *m.or_default(Class::PageFree) += 3;
        assert_eq!(m[&Class::PageFree], 5);
        assert_eq!(m.insert(Class::PageFree, 7), Some(5));
        assert_eq!(m.insert(Class::Lost, 1), None);
        assert_eq!(
            m.keys().copied().collect::<Vec<_>>(),
            [Class::PageFree, Class::Lost]
        );
    }
}
