//! tracefs: where it is mounted, the field layout of a tracepoint from its `format` file, and
//! the names its `print fmt` gives to a field's values (`__print_symbolic`), which are the
//! kernel's own names for its enums (perf prints the same).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use hmmtrace_common::offsets::{TracepointOffsets, UNKNOWN};

/// One `field:` line of a tracepoint's `format` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

/// Parses a `format` file (`events/<category>/<name>/format`) into its fields.
pub fn parse_format(text: &str) -> anyhow::Result<Vec<Field>> {
    let mut fields = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("field:"))
    {
        // field:unsigned long succeeded;	offset:8;	size:8;	signed:0;
        let mut decl = None;
        let (mut offset, mut size) = (None, None);
        for part in line.split(';').map(str::trim) {
            if let Some(d) = part.strip_prefix("field:") {
                decl = Some(d);
            } else if let Some(o) = part.strip_prefix("offset:") {
                offset = o.parse().ok();
            } else if let Some(s) = part.strip_prefix("size:") {
                size = s.parse().ok();
            }
        }
        let (Some(decl), Some(offset), Some(size)) = (decl, offset, size) else {
            bail!("malformed tracepoint field line: {line}");
        };
        // The name is the declaration's last identifier, before any array suffix.
        let name = decl
            .split('[')
            .next()
            .unwrap_or(decl)
            .split_whitespace()
            .last()
            .unwrap_or("")
            .to_string();
        fields.push(Field { name, offset, size });
    }
    if fields.is_empty() {
        bail!("no fields in tracepoint format");
    }
    Ok(fields)
}

/// Offsets of the `migrate:mm_migrate_pages` fields the program reads; a missing field, or one
/// of an unexpected size, is `UNKNOWN`.
pub fn migrate_pages_offsets(fields: &[Field]) -> TracepointOffsets {
    let find = |name: &str, size: u32| {
        fields
            .iter()
            .find(|f| f.name == name && f.size == size)
            .map_or(UNKNOWN, |f| f.offset)
    };
    TracepointOffsets {
        succeeded: find("succeeded", 8),
        failed: find("failed", 8),
        thp_succeeded: find("thp_succeeded", 8),
        thp_failed: find("thp_failed", 8),
        thp_split: find("thp_split", 8),
        large_folio_split: find("large_folio_split", 8),
        mode: find("mode", 4),
        reason: find("reason", 4),
    }
}

/// Offset of `child_pid` in `sched:sched_process_fork` (after the comm fields, which are
/// `char[16]` on older kernels and `__data_loc` on newer ones).
pub fn fork_offsets(fields: &[Field]) -> hmmtrace_common::offsets::ForkOffsets {
    hmmtrace_common::offsets::ForkOffsets {
        child_pid: fields
            .iter()
            .find(|f| f.name == "child_pid" && f.size == 4)
            .map_or(UNKNOWN, |f| f.offset),
        _pad: 0,
    }
}

/// Offsets of `pid` and `newcomm` in `task:task_rename`.
pub fn rename_offsets(fields: &[Field]) -> hmmtrace_common::offsets::RenameOffsets {
    let find = |name: &str, size: u32| {
        fields
            .iter()
            .find(|f| f.name == name && f.size == size)
            .map_or(UNKNOWN, |f| f.offset)
    };
    hmmtrace_common::offsets::RenameOffsets {
        pid: find("pid", 4),
        newcomm: find("newcomm", 16),
    }
}

/// The tracefs root, mounting it at /sys/kernel/tracing if no tracefs is mounted (needs root).
pub fn root() -> anyhow::Result<PathBuf> {
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(PathBuf::from(dir));
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null for tracefs.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        // The OS error stays in the chain: EPERM or EACCES here means "not privileged".
        return Err(anyhow::Error::new(std::io::Error::last_os_error()).context(
            "tracefs is not readable at /sys/kernel/tracing and mounting it there failed",
        ));
    }
    Ok(PathBuf::from("/sys/kernel/tracing"))
}

/// Whether tracefs lists the event `category:name`.
pub fn has_event(root: &Path, event: &str) -> bool {
    event
        .split_once(':')
        .is_some_and(|(c, n)| root.join("events").join(c).join(n).is_dir())
}

/// The values and names `__print_symbolic(REC->FIELD, {0, "NAME"}, ...)` gives to `field` in a
/// `format` file's print fmt; empty when it has none.
pub fn symbolic(text: &str, field: &str) -> Vec<(u64, String)> {
    let marker = format!("__print_symbolic(REC->{field},");
    let Some(start) = text.find(&marker) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = &text[start + marker.len()..];
    // `{v, "name"}` pairs until the closing parenthesis.
    while let Some(open) = rest.find('{') {
        if rest[..open].contains(')') {
            break;
        }
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let pair = &rest[open + 1..open + close];
        if let Some((v, name)) = pair.split_once(',') {
            let v = v.trim();
            let v = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            };
            if let Some(v) = v {
                out.push((v, name.trim().trim_matches('"').to_string()));
            }
        }
        rest = &rest[open + close + 1..];
    }
    out
}

/// Reads `events/<category>/<name>/format` as text.
pub fn read_format_text(root: &Path, category: &str, name: &str) -> anyhow::Result<String> {
    let path = root.join("events").join(category).join(name).join("format");
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads and parses `events/<category>/<name>/format`.
pub fn read_format(root: &Path, category: &str, name: &str) -> anyhow::Result<Vec<Field>> {
    let path = root.join("events").join(category).join(name).join("format");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse_format(&text).with_context(|| format!("in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As read on this project's host kernel (6.18).
    const FORMAT_6_18: &str = "name: mm_migrate_pages
ID: 713
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long succeeded;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned long failed;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long thp_succeeded;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long thp_failed;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long thp_split;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned long large_folio_split;\toffset:48;\tsize:8;\tsigned:0;
\tfield:enum migrate_mode mode;\toffset:56;\tsize:4;\tsigned:0;
\tfield:int reason;\toffset:60;\tsize:4;\tsigned:1;

print fmt: \"nr_succeeded=%lu\"
";

    /// 6.1's layout (include/trace/events/migrate.h of linux-source-6.1): no large_folio_split.
    const FORMAT_6_1: &str = "format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned long succeeded;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned long failed;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long thp_succeeded;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long thp_failed;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long thp_split;\toffset:40;\tsize:8;\tsigned:0;
\tfield:enum migrate_mode mode;\toffset:48;\tsize:4;\tsigned:0;
\tfield:int reason;\toffset:52;\tsize:4;\tsigned:1;
";

    #[test]
    fn symbolic_names_of_mode_and_reason() {
        let text = "print fmt: \"mode=%s reason=%s\", __print_symbolic(REC->mode, {0, \"MIGRATE_ASYNC\"}, {1, \"MIGRATE_SYNC_LIGHT\"}, {2, \"MIGRATE_SYNC\"}), __print_symbolic(REC->reason, {0, \"compaction\"}, {1, \"memory_failure\"}, {9, \"damon\"})\n";
        assert_eq!(
            symbolic(text, "mode"),
            [
                (0, "MIGRATE_ASYNC".to_string()),
                (1, "MIGRATE_SYNC_LIGHT".to_string()),
                (2, "MIGRATE_SYNC".to_string())
            ]
        );
        assert_eq!(symbolic(text, "reason")[2], (9, "damon".to_string()));
        assert!(symbolic(text, "succeeded").is_empty());
    }

    #[test]
    fn offsets_of_6_18() {
        let o = migrate_pages_offsets(&parse_format(FORMAT_6_18).unwrap());
        assert_eq!(
            (o.succeeded, o.large_folio_split, o.mode, o.reason),
            (8, 48, 56, 60)
        );
    }

    #[test]
    fn a_field_the_kernel_lacks_is_unknown_not_guessed() {
        let o = migrate_pages_offsets(&parse_format(FORMAT_6_1).unwrap());
        assert_eq!(o.large_folio_split, UNKNOWN);
        assert_eq!((o.mode, o.reason), (48, 52));
    }

    #[test]
    fn fork_child_pid_with_data_loc_and_array_comms() {
        // 6.18 (this host): __data_loc comms; 6.1: char[16] comms.
        let new = "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
        let old = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;\n\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";
        assert_eq!(fork_offsets(&parse_format(new).unwrap()).child_pid, 20);
        assert_eq!(fork_offsets(&parse_format(old).unwrap()).child_pid, 44);
    }

    #[test]
    fn malformed_formats_are_errors() {
        assert!(parse_format("name: x\n").is_err());
        assert!(parse_format("\tfield:int x;\toffset:zz;\tsize:4;\n").is_err());
    }
}
