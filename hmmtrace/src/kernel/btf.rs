//! A reader for the kernel's BTF (`/sys/kernel/btf/vmlinux`), just enough to answer what Rust
//! eBPF cannot answer at compile time (it has no CO-RE): the byte offset of a struct member,
//! the value of an enum constant, and whether a function exists as a BTF `FUNC` (which fentry
//! needs).
//!
//! Written here because aya-obj keeps its BTF types crate-private and btf-rs is LGPL. It
//! follows `include/uapi/linux/btf.h`; anything malformed is an error, never a panic.

use std::collections::HashMap;

use anyhow::{bail, Context as _};

const MAGIC: u16 = 0xeb9f;

// BTF_KIND_* (include/uapi/linux/btf.h).
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// One parsed type: its kind, name, and what the queries need of it.
#[derive(Debug, Clone)]
enum Type {
    /// A struct or union: its size in bytes and (member name, member type id, bit offset).
    Composite {
        size: u32,
        members: Vec<(String, u32, u32)>,
    },
    Enum {
        values: Vec<(String, i64)>,
    },
    /// Typedefs and qualifiers: the type they stand for.
    Alias {
        to: u32,
    },
    Other,
}

/// The parsed BTF of a kernel (or module).
pub struct Btf {
    /// Index = type id; id 0 is `void`.
    types: Vec<Type>,
    /// (kind, name) → type ids with that name.
    by_name: HashMap<(u32, String), Vec<u32>>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> anyhow::Result<u32> {
        let b = self
            .data
            .get(self.pos..self.pos + 4)
            .context("BTF type section is truncated")?;
        self.pos += 4;
        Ok(u32::from_le_bytes(b.try_into().unwrap()))
    }

    fn skip(&mut self, n: usize) -> anyhow::Result<()> {
        if self.pos + n > self.data.len() {
            bail!("BTF type section is truncated");
        }
        self.pos += n;
        Ok(())
    }
}

impl Btf {
    /// Parses the running kernel's BTF.
    pub fn from_sysfs() -> anyhow::Result<Btf> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).with_context(|| {
            format!("cannot read {path} (a kernel built with CONFIG_DEBUG_INFO_BTF has it)")
        })?;
        Btf::parse(&data).with_context(|| format!("in {path}"))
    }

    /// Parses raw BTF (little-endian, as on x86-64 and arm64).
    pub fn parse(data: &[u8]) -> anyhow::Result<Btf> {
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            bail!("not BTF data (bad magic)");
        }
        let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let hdr_len = word(4);
        let (type_off, type_len, str_off, str_len) = (word(8), word(12), word(16), word(20));
        let types_start = hdr_len.checked_add(type_off).context("bad BTF header")?;
        let strs_start = hdr_len.checked_add(str_off).context("bad BTF header")?;
        let types_data = data
            .get(types_start..types_start + type_len)
            .context("BTF type section out of bounds")?;
        let strings = data
            .get(strs_start..strs_start + str_len)
            .context("BTF string section out of bounds")?;
        let name = |off: u32| -> anyhow::Result<String> {
            let s = strings
                .get(off as usize..)
                .context("BTF name offset out of bounds")?;
            let end = s
                .iter()
                .position(|&b| b == 0)
                .context("unterminated BTF string")?;
            Ok(String::from_utf8_lossy(&s[..end]).into_owned())
        };

        let mut types = vec![Type::Other];
        let mut by_name: HashMap<(u32, String), Vec<u32>> = HashMap::new();
        let mut r = Reader {
            data: types_data,
            pos: 0,
        };
        while r.pos < types_data.len() {
            let name_off = r.u32()?;
            let info = r.u32()?;
            let size_or_type = r.u32()?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let ty = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => {
                    r.skip(4)?;
                    Type::Other
                }
                KIND_ARRAY => {
                    r.skip(12)?;
                    Type::Other
                }
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let m_name = r.u32()?;
                        let m_type = r.u32()?;
                        let m_off = r.u32()?;
                        // With kind_flag, the high 8 bits hold a bitfield's size.
                        let bit_off = if kind_flag {
                            m_off & 0x00ff_ffff
                        } else {
                            m_off
                        };
                        members.push((name(m_name)?, m_type, bit_off));
                    }
                    Type::Composite {
                        size: size_or_type,
                        members,
                    }
                }
                KIND_ENUM => {
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let n = r.u32()?;
                        let v = r.u32()?;
                        // kind_flag: signed values.
                        let v = if kind_flag { v as i32 as i64 } else { v as i64 };
                        values.push((name(n)?, v));
                    }
                    Type::Enum { values }
                }
                KIND_ENUM64 => {
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let n = r.u32()?;
                        let lo = r.u32()? as u64;
                        let hi = r.u32()? as u64;
                        values.push((name(n)?, ((hi << 32) | lo) as i64));
                    }
                    Type::Enum { values }
                }
                KIND_FUNC_PROTO => {
                    r.skip(8 * vlen)?;
                    Type::Other
                }
                KIND_DATASEC => {
                    r.skip(12 * vlen)?;
                    Type::Other
                }
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Type::Alias { to: size_or_type }
                }
                KIND_PTR | KIND_FWD | KIND_FUNC | KIND_FLOAT => Type::Other,
                other => bail!("unknown BTF kind {other} at type {}", types.len()),
            };
            let id = types.len() as u32;
            if name_off != 0 {
                by_name.entry((kind, name(name_off)?)).or_default().push(id);
            }
            types.push(ty);
        }
        Ok(Btf { types, by_name })
    }

    /// Follows typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(Type::Alias { to }) => id = *to,
                _ => break,
            }
        }
        id
    }

    /// Byte offset of `path` (`"field"` or `"outer.inner"`) in `struct name` (or a union).
    /// Members of anonymous structs and unions are found as if they were direct members, as C
    /// sees them. `None` if the kernel has no such struct or member, or it is a bitfield.
    pub fn member_offset(&self, name: &str, path: &str) -> Option<u32> {
        let ids = self
            .by_name
            .get(&(KIND_STRUCT, name.to_string()))
            .or_else(|| self.by_name.get(&(KIND_UNION, name.to_string())))?;
        // A full definition has members; a struct name can also appear as an empty duplicate.
        ids.iter().find_map(|&id| {
            let mut id = id;
            let mut total = 0u32;
            for part in path.split('.') {
                let (bits, ty) = self.find_member(id, part)?;
                total += bits;
                id = self.resolve(ty);
            }
            total.is_multiple_of(8).then_some(total / 8)
        })
    }

    /// (bit offset, type) of a member, looking through anonymous members.
    fn find_member(&self, id: u32, member: &str) -> Option<(u32, u32)> {
        let Type::Composite { members, .. } = self.types.get(self.resolve(id) as usize)? else {
            return None;
        };
        for (name, ty, bits) in members {
            if name == member {
                return Some((*bits, *ty));
            }
            if name.is_empty() {
                if let Some((inner, t)) = self.find_member(*ty, member) {
                    return Some((bits + inner, t));
                }
            }
        }
        None
    }

    /// `sizeof(struct name)`.
    pub fn struct_size(&self, name: &str) -> Option<u32> {
        let ids = self.by_name.get(&(KIND_STRUCT, name.to_string()))?;
        ids.iter().find_map(|&id| match &self.types[id as usize] {
            Type::Composite { size, members } if !members.is_empty() => Some(*size),
            _ => None,
        })
    }

    /// The value of an enum constant (`MMU_NOTIFY_MIGRATE`), searching every enum.
    pub fn enum_value(&self, constant: &str) -> Option<i64> {
        self.types.iter().find_map(|t| match t {
            Type::Enum { values } => values.iter().find(|(n, _)| n == constant).map(|(_, v)| *v),
            _ => None,
        })
    }

    /// Whether the kernel describes a function of this name (fentry attaches by BTF `FUNC`).
    pub fn has_function(&self, name: &str) -> bool {
        self.by_name.contains_key(&(KIND_FUNC, name.to_string()))
    }

    /// Names of every function the BTF describes.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.by_name
            .keys()
            .filter(|(k, _)| *k == KIND_FUNC)
            .map(|(_, n)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Assembles BTF from (name, info, size_or_type, trailing words) entries.
    fn build(strings: &[&str], types: &[(u32, u32, u32, Vec<u32>)]) -> Vec<u8> {
        let mut strs = vec![0u8];
        for s in strings {
            strs.extend_from_slice(s.as_bytes());
            strs.push(0);
        }
        let mut t = Vec::new();
        for (name, info, st, extra) in types {
            for w in [*name, *info, *st].iter().chain(extra) {
                t.extend_from_slice(&w.to_le_bytes());
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, t.len() as u32, t.len() as u32, strs.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(&strs);
        out
    }

    /// Offset of a string in `build`'s string section.
    fn off(strings: &[&str], s: &str) -> u32 {
        let mut o = 1;
        for x in strings {
            if *x == s {
                return o;
            }
            o += x.len() as u32 + 1;
        }
        panic!("{s}")
    }

    #[test]
    fn members_through_anonymous_unions_typedefs_and_bitfields() {
        let s = [
            "long",
            "page",
            "flags",
            "pgmap",
            "inner",
            "bits",
            "pg_t",
            "MMU_NOTIFY_X",
            "ev",
            "do_it",
        ];
        let o = |x| off(&s, x);
        let info = |kind: u32, vlen: u32, kf: bool| (kind << 24) | vlen | ((kf as u32) << 31);
        let types = vec![
            // 1: long
            (o("long"), info(KIND_INT, 0, false), 8, vec![64]),
            // 2: anonymous union { long pgmap @ 0 }
            (0, info(KIND_UNION, 1, false), 8, vec![o("pgmap"), 1, 0]),
            // 3: struct page { long flags @0; union { pgmap } @64; long bits:3 @128 (bitfield) }
            (
                o("page"),
                info(KIND_STRUCT, 3, true),
                24,
                vec![o("flags"), 1, 0, 0, 2, 64, o("bits"), 1, (3 << 24) | 131],
            ),
            // 4: typedef pg_t -> const -> struct page
            (o("pg_t"), info(KIND_TYPEDEF, 0, false), 5, vec![]),
            (0, info(KIND_CONST, 0, false), 3, vec![]),
            // 6: struct inner { pg_t inner @ 64 }
            (
                o("inner"),
                info(KIND_STRUCT, 1, false),
                32,
                vec![o("inner"), 4, 64],
            ),
            // 7: enum ev { MMU_NOTIFY_X = 6 }
            (
                o("ev"),
                info(KIND_ENUM, 1, false),
                4,
                vec![o("MMU_NOTIFY_X"), 6],
            ),
            // 8: func_proto (), 9: func do_it
            (0, info(KIND_FUNC_PROTO, 0, false), 0, vec![]),
            (o("do_it"), info(KIND_FUNC, 0, false), 8, vec![]),
        ];
        let btf = Btf::parse(&build(&s, &types)).unwrap();
        assert_eq!(btf.member_offset("page", "flags"), Some(0));
        assert_eq!(
            btf.member_offset("page", "pgmap"),
            Some(8),
            "found inside the anonymous union"
        );
        assert_eq!(
            btf.member_offset("page", "bits"),
            None,
            "bit 131 is not a byte offset"
        );
        assert_eq!(
            btf.member_offset("inner", "inner.pgmap"),
            Some(16),
            "through typedef and const"
        );
        assert_eq!(btf.member_offset("page", "nope"), None);
        assert_eq!(btf.member_offset("folio", "page"), None);
        assert_eq!(btf.enum_value("MMU_NOTIFY_X"), Some(6));
        assert!(btf.has_function("do_it") && !btf.has_function("page"));
    }

    #[test]
    fn malformed_btf_is_an_error() {
        assert!(Btf::parse(b"not btf at all, not btf at all").is_err());
        let mut b = build(&["x"], &[(1, (KIND_STRUCT << 24) | 5, 8, vec![1, 1, 0])]);
        assert!(Btf::parse(&b).is_err(), "5 members announced, 1 present");
        b.truncate(30);
        assert!(Btf::parse(&b).is_err());
        let b = build(&["x"], &[(1, 31 << 24, 0, vec![])]);
        assert!(Btf::parse(&b)
            .err()
            .unwrap()
            .to_string()
            .contains("unknown BTF kind"));
    }
}
