//! `/proc/kallsyms` lines (`ADDRESS TYPE NAME [MODULE]`), parsed here once for every reader:
//! the plan (functions and where they live, variables, `dev_pagemap_ops` instances), callback
//! discovery (the symbol at an address) and the census (which function an address falls in).

/// One symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sym<'a> {
    /// 0 for a reader without the privilege to see addresses.
    pub addr: u64,
    /// The type letter: `t`/`T` text, `w`/`W` weak (text here), `d`/`D`/`r`/`R`/`b`/`B` data.
    pub kind: char,
    pub name: &'a str,
    /// The module that defines it; empty for vmlinux.
    pub module: &'a str,
}

impl Sym<'_> {
    /// A function.
    pub fn is_text(&self) -> bool {
        matches!(self.kind, 't' | 'T' | 'w' | 'W')
    }

    /// Initialised or read-only data (where `dev_pagemap_ops` instances live).
    pub fn is_data(&self) -> bool {
        matches!(self.kind, 'd' | 'D' | 'r' | 'R')
    }
}

/// Every well-formed line of kallsyms text; others are skipped.
pub fn parse(text: &str) -> impl Iterator<Item = Sym<'_>> {
    text.lines().filter_map(|line| {
        let mut it = line.split_whitespace();
        let (addr, kind, name) = (it.next()?, it.next()?, it.next()?);
        let mut kinds = kind.chars();
        let (Some(kind), None) = (kinds.next(), kinds.next()) else {
            return None;
        };
        Some(Sym {
            addr: u64::from_str_radix(addr, 16).ok()?,
            kind,
            name,
            module: it
                .next()
                .map_or("", |m| m.trim_start_matches('[').trim_end_matches(']')),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_address_kind_name_and_module() {
        let text = "ffffffff81200000 T hmm_range_fault\n\
                    ffffffffa00007a4 t dmirror_devmem_fault\t[test_hmm]\n\
                    garbage\n\
                    zz T not_hex\n\
                    ffffffffa0002000 d dmirror_devmem_ops\t[test_hmm]\n";
        let syms: Vec<Sym> = parse(text).collect();
        assert_eq!(syms.len(), 3);
        assert_eq!(
            syms[1],
            Sym {
                addr: 0xffffffffa00007a4,
                kind: 't',
                name: "dmirror_devmem_fault",
                module: "test_hmm"
            }
        );
        assert!(syms[0].is_text() && syms[0].module.is_empty());
        assert!(syms[2].is_data() && !syms[2].is_text());
    }
}
