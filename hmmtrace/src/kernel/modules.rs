//! Modules loaded and unloaded while a session runs. Every HMM driver users run is a module,
//! often loaded after tracing started or reloaded during it: the session compares
//! `/proc/modules` with what it saw last (a read of a few kilobytes, four times a second, see
//! `pipeline::source::kernel`) and attaches to a new module's callbacks, or detaches from a
//! departed one's, within a second.
//!
//! Why polling and not the `module:module_load` tracepoint: attaching happens in userspace
//! either way, so the tracepoint would only shorten the delay from at most a quarter second to
//! a ring wake-up, for another program and record kind; a reload between two reads still shows
//! here as a new load address.

use std::collections::BTreeMap;

/// Loaded modules: name → (load address, size); the address is 0 where the kernel hides
/// addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded(BTreeMap<String, (u64, u64)>);

impl Loaded {
    /// The modules loaded now; none where `/proc/modules` is absent (no CONFIG_MODULES).
    pub fn read() -> Loaded {
        std::fs::read_to_string("/proc/modules")
            .map(|t| Loaded::parse(&t))
            .unwrap_or_default()
    }

    /// Parses `/proc/modules` text: `name size refcount deps state address [taints]`. A module
    /// on its way out (`Unloading`) counts as gone.
    pub fn parse(text: &str) -> Loaded {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 || f[4] == "Unloading" {
                continue;
            }
            let addr = f
                .get(5)
                .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
                .unwrap_or(0);
            let size = f[1].parse().unwrap_or(0);
            out.insert(f[0].to_string(), (addr, size));
        }
        Loaded(out)
    }

    /// (gone, came) from `self` to `now`; a module at a new address went and came back.
    pub fn diff(&self, now: &Loaded) -> (Vec<String>, Vec<String>) {
        let gone = self
            .0
            .iter()
            .filter(|(name, (addr, _))| now.0.get(*name).is_none_or(|(a, _)| a != addr))
            .map(|(name, _)| name.clone())
            .collect();
        let came = now
            .0
            .iter()
            .filter(|(name, (addr, _))| self.0.get(*name).is_none_or(|(a, _)| a != addr))
            .map(|(name, _)| name.clone())
            .collect();
        (gone, came)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Where the loaded modules live: [address, address + size) each, where addresses show.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0
            .values()
            .filter(|(addr, _)| *addr != 0)
            .map(|&(addr, size)| (addr, addr + size))
    }

    /// The loaded modules' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
nouveau 3137536 0 - Live 0xffffffffc0a00000
test_hmm 45056 0 - Live 0xffffffffc0000000 (O)
drm 741376 1 nouveau, Live 0xffffffffc0100000
";

    #[test]
    fn a_load_an_unload_and_a_reload_at_a_new_address_are_told_apart() {
        let before = Loaded::parse(BEFORE);
        assert!(before.contains("test_hmm") && before.contains("drm"));
        let after = Loaded::parse(
            "nouveau 3137536 0 - Live 0xffffffffc0b00000\n\
             drm 741376 1 nouveau, Live 0xffffffffc0100000\n\
             amdgpu 15138816 0 - Loading 0xffffffffc1000000\n",
        );
        let (gone, came) = before.diff(&after);
        assert_eq!(gone, ["nouveau", "test_hmm"]);
        assert_eq!(came, ["amdgpu", "nouveau"]);
        assert_eq!(before.diff(&before), (vec![], vec![]));
    }

    #[test]
    fn a_module_unloading_counts_as_gone_and_hidden_addresses_as_zero() {
        let l = Loaded::parse(
            "test_hmm 45056 0 - Unloading 0xffffffffc0000000 (O)\nfoo 1 0 - Live 0x0000000000000000\n",
        );
        assert!(!l.contains("test_hmm"));
        assert_eq!(l.0.get("foo"), Some(&(0, 1)));
        assert_eq!(l.ranges().count(), 0);
        let before = Loaded::parse(BEFORE);
        assert!(before
            .ranges()
            .any(|r| r == (0xffffffffc0000000, 0xffffffffc0000000 + 45056)));
        assert_eq!(Loaded::parse("garbage\n\n"), Loaded::default());
    }
}
