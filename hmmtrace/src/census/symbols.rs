//! The census's symbol tables: kallsyms (where each function is defined, and which function
//! an address falls in) and `Module.symvers` (what is exported, and how).

use std::collections::HashMap;

use super::ExportType;

/// Text symbols of `/proc/kallsyms`.
pub struct Symbols {
    /// (address, name, module; empty for vmlinux), sorted by address.
    by_addr: Vec<(u64, String, String)>,
    /// name → index into `by_addr` (the first definition).
    by_name: HashMap<String, usize>,
    /// Where code lives: vmlinux's `_stext.._etext` and each module's from `/proc/modules`
    /// (its base and size); an address outside them (a module's init code, freed once it
    /// loaded) is named by no symbol, rather than by whichever precedes it.
    text: Vec<(u64, u64)>,
}

impl Symbols {
    pub fn parse(text: &str) -> Symbols {
        // Unprivileged readers see zeros: no address means nothing to resolve.
        let mut by_addr: Vec<(u64, String, String)> = crate::kernel::kallsyms::parse(text)
            .filter(|s| s.is_text() && s.addr != 0)
            .map(|s| (s.addr, s.name.to_string(), s.module.to_string()))
            .collect();
        by_addr.sort_by_key(|(a, _, _)| *a);
        let mut by_name = HashMap::new();
        for (i, (_, name, _)) in by_addr.iter().enumerate() {
            by_name.entry(name.clone()).or_insert(i);
        }
        let mut s = Symbols {
            by_addr,
            by_name,
            text: Vec::new(),
        };
        let at = |n: &str| s.by_name.get(n).map(|&i| s.by_addr[i].0);
        if let (Some(a), Some(b)) = (at("_stext"), at("_etext")) {
            s.text.push((a, b));
        }
        s
    }

    /// Adds the loaded modules' code ranges (base and size, as `/proc/modules` gives them);
    /// without any, every address is taken as code.
    pub fn with_modules(mut self, modules: &crate::kernel::modules::Loaded) -> Symbols {
        self.text.extend(modules.ranges());
        self
    }

    /// Where function `name` is defined: `vmlinux` or its module.
    pub fn module_of(&self, name: &str) -> Option<String> {
        let (_, _, m) = &self.by_addr[*self.by_name.get(name)?];
        Some(if m.is_empty() {
            "vmlinux".into()
        } else {
            m.clone()
        })
    }

    pub fn is_function(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Every function: (name, `vmlinux` or module).
    pub fn functions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_addr.iter().map(|(_, n, m)| {
            (
                n.as_str(),
                if m.is_empty() { "vmlinux" } else { m.as_str() },
            )
        })
    }

    /// The function `addr` falls in (the nearest symbol at or below it) and its module (empty
    /// for vmlinux); `None` outside the code ranges known, below the first symbol, or more
    /// than 1 MiB past the nearest, which is no function's body.
    pub fn containing(&self, addr: u64) -> Option<(&str, &str)> {
        if !self.text.is_empty() && !self.text.iter().any(|(a, b)| (*a..*b).contains(&addr)) {
            return None;
        }
        let i = self.by_addr.partition_point(|(a, _, _)| *a <= addr);
        let (a, name, module) = self.by_addr.get(i.checked_sub(1)?)?;
        (addr - a < 1 << 20).then_some((name.as_str(), module.as_str()))
    }
}

/// `Module.symvers`: `CRC<TAB>symbol<TAB>module<TAB>EXPORT_SYMBOL[_GPL]<TAB>namespace` per
/// line → (symbol, export type). Lines in another form are skipped.
pub fn parse_symvers(text: &str) -> Vec<(String, ExportType)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let ty = match *f.get(3)? {
                "EXPORT_SYMBOL_GPL" => ExportType::Gpl,
                "EXPORT_SYMBOL" => ExportType::Plain,
                _ => return None,
            };
            Some((f.get(1)?.to_string(), ty))
        })
        .collect()
}
