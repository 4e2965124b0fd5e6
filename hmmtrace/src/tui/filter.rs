//! The event log's filter (`/`): space-separated terms, all of which must match. A term is
//! `kind:NAME[,NAME]` (a class: `invalidation` is the range, `interval_invalidate` a driver's
//! callback), `pid:N[,N]` (thread or process id), `comm:TEXT`, `dev:NAME`, `t:FROM..TO`
//! (seconds from the first event, as the log's time column), `addr:START..END` (events whose
//! address range overlaps it), or plain text found anywhere in the line as the log shows it
//! (case-insensitive). `f` sets a filter of `pid:`, `t:` and `addr:` to a finding's events.
//! Limits: 1024 bytes, 32 terms, 64 values in a list.

use crate::event::Class;

use super::app::LogEntry;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Term {
    Kind(Vec<Class>),
    Pid(Vec<u32>),
    Comm(String),
    Device(String),
    /// ns from the first event, inclusive.
    Time(u64, u64),
    Addr(u64, u64),
    Text(String),
}

/// `A..B` of numbers parsed by `num`.
fn span<T>(word: &str, v: &str, num: impl Fn(&str) -> Option<T>) -> Result<(T, T), String> {
    let (a, b) = v
        .split_once("..")
        .ok_or_else(|| format!("{word}: give a range FROM..TO"))?;
    match (num(a), num(b)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(format!("{word}: not a range of numbers")),
    }
}

fn address(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Seconds with up to 9 decimals, exactly, as ns.
fn seconds(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    whole.checked_mul(1_000_000_000)?.checked_add(frac)
}

/// At most this many bytes of filter text: every log line is matched against every term on
/// every frame, so a filter stays small enough for that to be instant.
pub const MAX_FILTER_BYTES: usize = 1024;
/// At most this many terms.
pub const MAX_TERMS: usize = 32;
/// At most this many values in a term's comma list (`kind:`, `pid:`).
pub const MAX_VALUES: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    terms: Vec<Term>,
}

impl Filter {
    /// Parses a filter; an error says which term is wrong and why.
    pub fn parse(s: &str) -> Result<Filter, String> {
        if s.len() > MAX_FILTER_BYTES {
            return Err(format!(
                "a filter is at most {MAX_FILTER_BYTES} bytes (this one is {})",
                s.len()
            ));
        }
        let mut terms = Vec::new();
        for word in s.split_whitespace() {
            if terms.len() == MAX_TERMS {
                return Err(format!("a filter has at most {MAX_TERMS} terms"));
            }
            if let Some((key, v)) = word.split_once(':') {
                if v.split(',').count() > MAX_VALUES {
                    return Err(format!("{key}: at most {MAX_VALUES} values in a list"));
                }
            }
            let term = match word.split_once(':') {
                Some(("kind", v)) => Term::Kind(
                    v.split(',')
                        .map(|n| {
                            Class::from_name(n).ok_or_else(|| {
                                format!(
                                    "kind:{n}: no such kind (one of: {})",
                                    Class::ALL.map(|k| k.name()).join(", ")
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Some(("pid", v)) => Term::Pid(
                    v.split(',')
                        .map(|n| n.parse().map_err(|_| format!("pid:{n}: not a number")))
                        .collect::<Result<_, _>>()?,
                ),
                Some(("comm", v)) => Term::Comm(v.to_string()),
                Some(("dev" | "device", v)) => Term::Device(v.to_string()),
                Some(("t", v)) => {
                    let (a, b) = span(word, v, seconds)?;
                    Term::Time(a, b)
                }
                Some(("addr", v)) => {
                    let (a, b) = span(word, v, address)?;
                    Term::Addr(a, b)
                }
                Some((key, _)) => {
                    return Err(format!(
                        "{word}: unknown key '{key}' (use kind:, pid:, comm:, dev:, t:, addr:)"
                    ))
                }
                None => Term::Text(word.to_lowercase()),
            };
            terms.push(term);
        }
        Ok(Filter { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// A filter of a finding's events: its process, its time span (ns from `t0`, the first
    /// event) and its address range.
    pub fn text_of(f: &crate::findings::Finding, t0: u64) -> String {
        // To the nanosecond: the span is exact.
        let from = f.first_ns.saturating_sub(t0);
        let to = f.last_ns.saturating_sub(t0);
        let mut s = format!(
            "pid:{} t:{}.{:09}..{}.{:09}",
            f.tgid,
            from / 1_000_000_000,
            from % 1_000_000_000,
            to / 1_000_000_000,
            to % 1_000_000_000
        );
        if let Some((a, b)) = f.range {
            s.push_str(&format!(" addr:{a:#x}..{b:#x}"));
        }
        s
    }

    /// Whether the log entry passes; `t0` is the first event's time (for `t:`).
    pub fn matches(&self, entry: &LogEntry, t0: u64) -> bool {
        let e = &entry.event;
        let comm = e.comm.to_string();
        let device = entry.device.as_deref().unwrap_or("");
        // The line as shown, built only when a plain-text term needs it.
        let mut shown: Option<String> = None;
        self.terms.iter().all(|t| match t {
            Term::Kind(ks) => ks.contains(&e.class()),
            Term::Pid(ps) => ps.contains(&e.tgid) || ps.contains(&e.pid),
            Term::Comm(c) => comm == *c,
            Term::Device(d) => device == d,
            Term::Time(a, b) => (*a..=*b).contains(&e.ts_ns.saturating_sub(t0)),
            Term::Addr(a, b) => e.body.range().is_some_and(|(s, end)| s < *b && *a < end),
            Term::Text(t) => shown
                .get_or_insert_with(|| super::render::log::describe(entry).to_lowercase())
                .contains(t.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, Comm, Event};

    fn entry(kind_fault: bool, tgid: u32, comm: &str, device: Option<&str>) -> LogEntry {
        let body = if kind_fault {
            Body::DeviceFault(Default::default())
        } else {
            Body::PageFree(Default::default())
        };
        LogEntry {
            seq: 1,
            event: Event {
                ts_ns: 0,
                duration_ns: None,
                cpu: 0,
                tgid,
                pid: tgid + 1,
                comm: Comm::new(comm),
                unknown: 0,
                body,
            },
            device: device.map(Into::into),
        }
    }

    #[test]
    fn terms_all_match_and_values_are_alternatives() {
        let f = Filter::parse("kind:device_fault,page_free pid:7 dev:gpu0").unwrap();
        assert!(f.matches(&entry(true, 7, "a", Some("gpu0")), 0));
        assert!(
            f.matches(&entry(false, 6, "a", Some("gpu0")), 0),
            "pid matches the thread id too"
        );
        assert!(!f.matches(&entry(true, 9, "a", Some("gpu0")), 0));
        assert!(!f.matches(&entry(true, 7, "a", Some("gpu1")), 0));
        let text = Filter::parse("TRAIN").unwrap();
        assert!(text.matches(&entry(true, 1, "train", None), 0));
        assert!(Filter::parse("fault")
            .unwrap()
            .matches(&entry(true, 1, "x", None), 0));
        // Text on screen matches, whatever its case: the log shows `migrate_to_ram at 0x...`.
        assert!(Filter::parse("Migrate_To_Ram")
            .unwrap()
            .matches(&entry(true, 1, "x", None), 0));
        assert!(!Filter::parse("RAM")
            .unwrap()
            .matches(&entry(false, 1, "x", None), 0));
        assert!(!Filter::parse("comm:trai")
            .unwrap()
            .matches(&entry(true, 1, "train", None), 0));
        assert!(Filter::parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_terms_say_what_is_wrong() {
        assert!(Filter::parse("kind:faults")
            .unwrap_err()
            .contains("no such kind"));
        assert!(Filter::parse("pid:x").unwrap_err().contains("not a number"));
        assert!(Filter::parse("cpu:1")
            .unwrap_err()
            .contains("unknown key 'cpu'"));
    }

    #[test]
    fn a_filter_past_its_limits_is_refused_saying_which() {
        let terms = |n: usize| vec!["x"; n].join(" ");
        assert!(Filter::parse(&terms(MAX_TERMS)).is_ok());
        let e = Filter::parse(&terms(MAX_TERMS + 1)).unwrap_err();
        assert!(e.contains("at most 32 terms"), "{e}");
        let pids = |n: usize| format!("pid:{}", vec!["1"; n].join(","));
        assert!(Filter::parse(&pids(MAX_VALUES)).is_ok());
        let e = Filter::parse(&pids(MAX_VALUES + 1)).unwrap_err();
        assert!(e.contains("pid: at most 64 values"), "{e}");
        let e = Filter::parse(&"y".repeat(MAX_FILTER_BYTES + 1)).unwrap_err();
        assert!(e.contains("at most 1024 bytes"), "{e}");
    }
}
