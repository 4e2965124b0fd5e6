//! A map from [`Class`] to a value, stored as an array indexed by the class: what the summary
//! keeps per class (counts, latency, rate series) and updates once or twice per event. A
//! `BTreeMap` lookup there was a fifth of `Summary::add`; this is one index. Iteration is in
//! class order, as the `BTreeMap` it replaces iterated (and as reports list kinds).
//!
//! Written by hand: an enum-keyed map crate (enum-map) needs a derive on `Class` and gives a
//! value for every key, where the summary needs "absent" (a kind never seen is not listed).

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

    pub fn get_mut(&mut self, class: &Class) -> Option<&mut V> {
        self.slots[*class as usize].as_mut()
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

    pub fn len(&self) -> usize {
        self.values().count()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
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

impl<V> FromIterator<(Class, V)> for ByClass<V> {
    fn from_iter<I: IntoIterator<Item = (Class, V)>>(iter: I) -> Self {
        let mut m = ByClass::new();
        for (c, v) in iter {
            m.insert(c, v);
        }
        m
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
            assert_eq!(m.len(), b.len());
            assert_eq!(m.is_empty(), b.is_empty());
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
