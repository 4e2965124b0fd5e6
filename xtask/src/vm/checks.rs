//! The guest checks: what the guest printed between `vm/init`'s markers, read into typed
//! records ([`Report`] from `hmmtrace report --format json`, [`Row`] from `hmmtrace export`,
//! kselftest lines), checked against numbers worked out from test_hmm's code and against the
//! reference engine.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _};
use serde::Deserialize;

/// `hmmtrace report --format json`, the fields the checks read.
#[derive(Debug, Default, Deserialize)]
struct Report {
    kinds: Vec<KindReport>,
    /// Dropped records by probe.
    #[serde(default)]
    lost: BTreeMap<String, u64>,
    /// What the detectors found.
    #[serde(default)]
    findings: Option<Findings>,
    /// With `--by`: a report per group.
    #[serde(default)]
    groups: Vec<GroupReport>,
    /// How the attach plan changed during the recording.
    #[serde(default)]
    plan_changes: Vec<PlanChange>,
}

#[derive(Debug, Default, Deserialize)]
struct PlanChange {
    at_ns: u64,
    changes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct GroupReport {
    group: String,
    kinds: Vec<KindReport>,
}

#[derive(Debug, Default, Deserialize)]
struct Findings {
    list: Vec<Finding>,
}

#[derive(Debug, Deserialize)]
struct Finding {
    kind: String,
    severity: String,
    comm: String,
    tgid: u32,
    device: Option<String>,
    symbol: Option<String>,
    range: Option<(u64, u64)>,
    counts: BTreeMap<String, u64>,
    message: String,
}

#[derive(Debug, Deserialize)]
struct KindReport {
    kind: String,
    count: u64,
    pages: u64,
    #[serde(default)]
    retries: Option<u64>,
    latency_ns: Option<Latency>,
}

#[derive(Debug, Deserialize)]
struct Latency {
    min: u64,
}

impl Report {
    fn kind(&self, kind: &str) -> Option<&KindReport> {
        self.kinds.iter().find(|k| k.kind == kind)
    }

    fn count(&self, kind: &str) -> u64 {
        self.kind(kind).map_or(0, |k| k.count)
    }

    fn pages(&self, kind: &str) -> u64 {
        self.kind(kind).map_or(0, |k| k.pages)
    }

    fn lost(&self) -> u64 {
        self.lost.values().sum()
    }

    fn findings(&self, kind: &str) -> Vec<&Finding> {
        self.findings
            .iter()
            .flat_map(|f| &f.list)
            .filter(|f| f.kind == kind)
            .collect()
    }
}

/// `NAME: region 0x... pages N ...` as a workload printed it: the region's start and pages.
fn region(out: &str, name: &str) -> Option<(u64, u64)> {
    section(out, name).lines().find_map(|l| {
        let rest = l.strip_prefix(&format!("{name}: region 0x"))?;
        let (addr, rest) = rest.split_once(' ')?;
        let pages = rest.strip_prefix("pages ")?.split(' ').next()?;
        Some((u64::from_str_radix(addr, 16).ok()?, pages.parse().ok()?))
    })
}

/// A finding in one line, as the note lists them.
fn one_line(f: &Finding) -> String {
    let counts: Vec<String> = f.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{} {} {} [{}]{}{}{}: {} ({})",
        f.severity,
        f.kind,
        f.comm,
        f.tgid,
        f.device
            .as_deref()
            .map_or(String::new(), |d| format!(" {d}")),
        f.symbol
            .as_deref()
            .map_or(String::new(), |s| format!(" {s}")),
        f.range
            .map_or(String::new(), |(a, b)| format!(" {a:#x}..{b:#x}")),
        f.message,
        counts.join(" ")
    )
}

/// One event of `hmmtrace export` (JSONL), the fields the checks read; fields that do not
/// apply to a kind are absent.
#[derive(Debug, Deserialize)]
struct Row {
    kind: String,
    start: Option<u64>,
    end: Option<u64>,
    /// Invalidations: `MMU_NOTIFY_*` without the prefix.
    event: Option<String>,
    /// Invalidations: `range_start` or `callback`.
    path: Option<String>,
    /// Migrations: pages migrated.
    migrated: Option<u64>,
    /// Range faults: pages.
    npages: Option<u64>,
    /// The task's name.
    #[serde(default)]
    comm: String,
    /// When it began, on the recording's clock.
    ts_ns: Option<u64>,
    /// Page frees: how long the driver's callback took, where it was timed.
    callback_ns: Option<u64>,
}

/// The text between `=== name` and the next `===` marker.
fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let marker = format!("=== {name}");
    let Some(start) = out.find(&marker) else {
        return "";
    };
    let rest = &out[start + marker.len()..];
    let rest = rest.split_once('\n').map_or("", |(_, r)| r);
    // An empty section is followed at once by the next marker.
    if rest.starts_with("=== ") {
        return "";
    }
    rest.find("\n=== ").map_or(rest, |end| &rest[..end])
}

/// The guest's capture of the deterministic workload, printed in base64: the lines of its
/// section that are base64 (a kernel message on the console is not).
pub fn workload_capture(out: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let text: String = section(out, "capture-workload")
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        })
        .collect();
    anyhow::ensure!(!text.is_empty(), "the guest printed no workload capture");
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .context("the guest's workload capture is not base64")
}

/// kselftest results: test name → "ok", "not ok" or "skip".
fn outcomes(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let (verdict, rest) = if let Some(r) = line.strip_prefix("not ok ") {
            ("not ok", r)
        } else if let Some(r) = line.strip_prefix("ok ") {
            ("ok", r)
        } else {
            continue;
        };
        let mut it = rest.splitn(2, ' ');
        let (_num, name) = (it.next(), it.next().unwrap_or(""));
        let (name, skip) = match name.split_once(" # SKIP") {
            Some((n, _)) => (n, true),
            None => (name, false),
        };
        m.insert(
            name.trim().to_string(),
            if skip { "skip".into() } else { verdict.into() },
        );
    }
    m
}

/// The first report of a section (a kernel message may still follow it on the console).
fn report(text: &str) -> anyhow::Result<Report> {
    let start = text
        .find('{')
        .ok_or_else(|| anyhow::anyhow!("no JSON report in:\n{text}"))?;
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<Report>()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no JSON report in:\n{text}"))?
        .map_err(|e| anyhow::anyhow!("not a report ({e}):\n{text}"))
}

/// The rows of a JSONL export; lines that are not JSON objects (a kernel message on the
/// console) are skipped.
fn rows(text: &str) -> anyhow::Result<Vec<Row>> {
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a line of the export is not an event")?;
    anyhow::ensure!(!rows.is_empty(), "the export has no events");
    Ok(rows)
}

/// Per-kind counts of an export, as check 2 compares them: records per kind (invalidations
/// per `MMU_NOTIFY_*` event and path), and pages for the kinds that move or fault pages.
fn tally(rows: &[Row]) -> BTreeMap<String, u64> {
    let mut t = BTreeMap::new();
    for r in rows {
        let key = match r.kind.as_str() {
            k @ ("invalidation" | "interval_invalidate") => format!(
                "{k}.{}.{}",
                r.event.as_deref().unwrap_or("?"),
                r.path.as_deref().unwrap_or("?")
            ),
            k => k.to_string(),
        };
        *t.entry(key).or_default() += 1;
        let pages = match r.kind.as_str() {
            "migration" => r.migrated,
            "range_fault" => r.npages,
            _ => None,
        };
        if let Some(p) = pages {
            *t.entry(format!("{}.pages", r.kind)).or_default() += p;
        }
    }
    t
}

/// Rows of `record --program-costs`' table: (program, runs, ns per run).
pub fn program_costs(text: &str) -> Vec<(String, u64, f64)> {
    let Some(at) = text.find("program costs (") else {
        return Vec::new();
    };
    text[at..]
        .lines()
        .skip(2)
        .map_while(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [name, runs, ns] => Some((name.to_string(), runs.parse().ok()?, ns.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

/// The guest's `=== timing` lines: seconds per run of hmm-tests, by mode (`untraced`,
/// `record`, `aggregate`).
pub fn timings(out: &str) -> BTreeMap<String, Vec<f64>> {
    let mut t: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for l in section(out, "timing").lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let ["time", mode, t0, t1] = f.as_slice() {
            if let (Ok(a), Ok(b)) = (t0.parse::<f64>(), t1.parse::<f64>()) {
                t.entry(mode.to_string()).or_default().push(b - a);
            }
        }
    }
    t
}

/// A program's runs and ns per run.
pub type Cost = (u64, f64);

/// Per program, the cost per run with every event recorded and with `--aggregate` (if it
/// ran), over the whole hmm-tests suite in the guest: the table BENCHMARKS.md shows.
pub fn cost_table(out: &str) -> Vec<(String, Cost, Option<Cost>)> {
    let full = program_costs(section(out, "traced"));
    let aggregated = program_costs(section(out, "traced-aggregate"));
    full.into_iter()
        .map(|(name, runs, ns)| {
            let agg = aggregated
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, r, ns)| (*r, *ns));
            (name, (runs, ns), agg)
        })
        .collect()
}

/// The deterministic workload's report against the numbers worked out in workload.c; the
/// list of what differs.
fn workload_differences(w: &Report) -> Vec<String> {
    let (n, m, k) = (64, 16, 32);
    // (kind, what, got, expected): see workload.c for where each number comes from.
    let want = [
        ("migration", "pages", w.pages("migration"), n + m),
        ("migration", "count", w.count("migration"), 1 + m + 1),
        ("device_fault", "count", w.count("device_fault"), m),
        ("page_free", "count", w.count("page_free"), n),
        ("range_fault", "count", w.count("range_fault"), 1),
        ("range_fault", "pages", w.pages("range_fault"), k),
    ];
    let mut wrong: Vec<String> = want
        .iter()
        .filter(|(.., got, v)| got != v)
        .map(|(kd, f, got, v)| format!("{kd} {f}: {got} (want {v})"))
        .collect();
    for kd in ["migration", "device_fault", "page_free", "range_fault"] {
        let min = w
            .kind(kd)
            .and_then(|k| k.latency_ns.as_ref())
            .map_or(0, |l| l.min);
        if min == 0 {
            wrong.push(format!("{kd}: no non-zero latency"));
        }
    }
    if w.lost() > 0 {
        wrong.push(format!("{} lost", w.lost()));
    }
    wrong
}

/// An error with the guest's last lines unless it got to its end.
fn finished(out: &str) -> anyhow::Result<()> {
    if !out.contains("=== end") {
        let tail: Vec<&str> = out.lines().rev().take(20).collect();
        bail!(
            "the guest did not finish; last lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

/// The checks, printed one per line; an error names every failed one.
pub fn check(out: &str, engine_rows: &str) -> anyhow::Result<()> {
    finished(out)?;
    let mut verdicts = Verdicts::default();
    let mut verdict = |name: &str, ok: bool, detail: String| verdicts.check(name, ok, detail);
    println!("{}", section(out, "probes").trim_end());
    let base = outcomes(section(out, "baseline"));
    let traced = outcomes(section(out, "traced"));
    let passed = base.values().filter(|v| *v == "ok").count();
    let diff: Vec<String> = base
        .iter()
        .filter(|(k, v)| traced.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k}: {v} -> {}",
                traced.get(k).map_or("missing", String::as_str)
            )
        })
        .collect();
    verdict(
        "hmm-tests outcomes are the same traced and untraced",
        !base.is_empty() && diff.is_empty(),
        if diff.is_empty() {
            format!("{} tests, {passed} ok untraced", base.len())
        } else {
            diff.join("; ")
        },
    );
    // What each probe's program cost over the suite, recorded and aggregated (under TCG the
    // guest's clock is emulated: the two modes compare, the nanoseconds are not the host's).
    let table = cost_table(out);
    let hmm: Vec<_> = table
        .iter()
        .filter(|(n, _, _)| !n.starts_with("sched_process") && !n.starts_with("task_rename"))
        .collect();
    verdict(
        "every HMM probe's program ran recorded and aggregated, with its cost",
        !hmm.is_empty() && hmm.iter().all(|(_, _, a)| a.is_some_and(|(r, _)| r > 0)),
        table
            .iter()
            .map(|(n, (r, ns), a)| match a {
                Some((ar, ans)) => {
                    format!("{n}: {r} runs {ns:.0} ns, aggregated {ar} runs {ans:.0} ns")
                }
                None => format!("{n}: {r} runs {ns:.0} ns, aggregated: did not run"),
            })
            .collect::<Vec<_>>()
            .join("; "),
    );
    let all = report(section(out, "report"))?;
    // Discovery: with the driver table off, both callbacks found through test_hmm's ops.
    let discovery = section(out, "discovery");
    let found = |f: &str| {
        discovery.lines().any(|l| {
            l.contains(f)
                && l.contains("attached")
                && l.contains("discovered in dmirror_devmem_ops")
        })
    };
    let timed_frees = discovery
        .lines()
        .find_map(|l| l.strip_prefix("page frees with the driver's callback timed: "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let d = report(section(out, "report-discovery"))?;
    verdict(
        "without the driver table, discovery finds and times dmirror_devmem_fault and dmirror_devmem_free",
        found("dmirror_devmem_fault (migrate_to_ram)")
            && found("dmirror_devmem_free (page_free)")
            && d.count("device_fault") > 0
            && timed_frees > 0,
        format!(
            "{}; {} device faults, {} page frees of which {timed_frees} with the callback timed",
            discovery
                .lines()
                .filter(|l| l.contains("discovered"))
                .collect::<Vec<_>>()
                .join("; "),
            d.count("device_fault"),
            d.count("page_free")
        ),
    );
    let kinds = [
        "migration",
        "device_fault",
        "page_free",
        "invalidation",
        "interval_invalidate",
        "range_fault",
    ];
    let counts: Vec<String> = kinds
        .iter()
        .map(|k| format!("{k}={}", all.count(k)))
        .collect();
    verdict(
        "the capture shows every HMM path",
        kinds.iter().all(|k| all.count(k) > 0),
        counts.join(" "),
    );
    verdict(
        "no lost events",
        all.lost() == 0,
        format!("{} lost", all.lost()),
    );
    // Per mechanism: migrations and page frees are the same in every run of hmm-tests (the
    // invalidation and range-fault counts vary with timing, see docs/kernel-facts.md).
    let stable = |r: &Report| (r.count("migration"), r.count("page_free"));
    let fentry = stable(&report(section(out, "report-fentry"))?);
    let kprobe = stable(&report(section(out, "report-kprobe"))?);
    let auto = stable(&all);
    verdict(
        "fentry and kprobe count the same migrations and page frees",
        fentry == kprobe && kprobe == auto && auto.0 > 0,
        format!("(migration, page_free): auto {auto:?}, fentry {fentry:?}, kprobe {kprobe:?}"),
    );
    // Check 1: the deterministic workload, against the numbers worked out in workload.c.
    let wrong = workload_differences(&report(section(out, "report-workload"))?);
    verdict(
        "the deterministic workload matches the numbers worked out from test_hmm",
        wrong.is_empty(),
        if wrong.is_empty() {
            "80 pages migrated in 18 migrations (one is the release's eviction), 16 faults, \
             64 frees, 1 range fault of 32 pages"
                .into()
        } else {
            wrong.join("; ")
        },
    );
    // The same workload with the programs' diagnostics compiled in (--ebpf-log): every
    // program still passes the verifier and attaches, and counts the same.
    let logged = report(section(out, "report-ebpf-log"))?;
    let wrong = workload_differences(&logged);
    let logged_run = section(out, "workload-ebpf-log");
    let mut refused: Vec<&str> = logged_run
        .lines()
        .filter(|l| !l.contains("ebpf [") && (l.contains("denied") || l.contains("rejected")))
        .collect();
    if !logged_run.lines().any(|l| l == "rc=0") {
        refused.push("record --ebpf-log did not exit 0");
    }
    verdict(
        "with --ebpf-log every program loads and the workload counts the same",
        wrong.is_empty() && refused.is_empty(),
        if wrong.is_empty() && refused.is_empty() {
            format!(
                "{} migrations, {} faults, {} frees; diagnostics: {}",
                logged.count("migration"),
                logged.count("device_fault"),
                logged.count("page_free"),
                logged_run.lines().filter(|l| l.contains("ebpf [")).count()
            )
        } else {
            wrong
                .into_iter()
                .chain(refused.into_iter().map(String::from))
                .collect::<Vec<_>>()
                .join("; ")
        },
    );
    // In-kernel aggregation counts what the records count: every kind, count and pages.
    let full = report(section(out, "report-workload"))?;
    let figures = |r: &Report| -> BTreeMap<String, (u64, u64, bool)> {
        r.kinds
            .iter()
            .map(|k| (k.kind.clone(), (k.count, k.pages, k.latency_ns.is_some())))
            .collect()
    };
    let want = figures(&full);
    // Through the per-CPU slots, and with one slot per array (most groups in the hash maps).
    for (how, run, rep) in [
        ("", "workload-aggregate", "report-workload-aggregate"),
        (
            ", with most groups in the hash maps",
            "workload-aggregate-maps",
            "report-workload-aggregate-maps",
        ),
    ] {
        let got = figures(&report(section(out, rep))?);
        let ran = section(out, run).lines().any(|l| l == "rc=0");
        verdict(
            &format!("--aggregate counts every kind as the records do (count, pages, timed){how}"),
            ran && want == got && !want.is_empty(),
            if want == got {
                format!("{got:?}")
            } else {
                format!("records {want:?}, aggregates {got:?}, record exited 0: {ran}")
            },
        );
    }
    // Each group by device too: with --aggregate the programs read only what a group keeps
    // (the owner from setup, not finalize; the owner alone of a range or page).
    let by_device = |r: &Report| -> BTreeMap<(String, String), (u64, u64)> {
        r.groups
            .iter()
            .flat_map(|g| {
                g.kinds
                    .iter()
                    .map(|k| ((g.group.clone(), k.kind.clone()), (k.count, k.pages)))
            })
            .collect()
    };
    let want = by_device(&report(section(out, "report-workload-by-device"))?);
    let got = by_device(&report(section(
        out,
        "report-workload-aggregate-by-device",
    ))?);
    let devices: BTreeSet<&str> = want.keys().map(|(d, _)| d.as_str()).collect();
    verdict(
        "--aggregate groups every kind by device as the records do",
        want == got && !want.is_empty(),
        if want == got {
            format!("{} groups over devices {devices:?}", got.len())
        } else {
            format!("records {want:?}, aggregates {got:?}")
        },
    );
    // Check 1, continued: the munmap's MMU_NOTIFY_UNMAP covers the workload's region.
    let kernel_rows = rows(section(out, "export-workload"))?;
    let workload = region(out, "workload");
    let covering = workload.map_or(0, |(addr, pages)| {
        kernel_rows
            .iter()
            .filter(|r| {
                matches!(r.kind.as_str(), "invalidation" | "interval_invalidate")
                    && r.event.as_deref() == Some("UNMAP")
            })
            .filter(|r| r.start == Some(addr) && r.end == Some(addr + pages * 4096))
            .count()
    });
    // Exactly the region: the exit's UNMAP of the whole address space covers it too and must
    // not be what passes this. Two records: the range start and test_hmm's callback.
    verdict(
        "the munmap's MMU_NOTIFY_UNMAP covers exactly the workload's region",
        workload.is_some() && covering == 2,
        match workload {
            Some((addr, pages)) => format!(
                "{covering} UNMAP records (want 2: range start and callback) for {addr:#x} + {pages} pages"
            ),
            None => "the workload did not print its region".into(),
        },
    );
    // Task names come from fork and rename records, not from each event: every event of the
    // workload (its own process, started by `record -- /workload`) must still carry its name.
    let mut names: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &kernel_rows {
        *names.entry(r.comm.as_str()).or_default() += 1;
    }
    verdict(
        "every event of the workload is named by its task",
        names.len() == 1 && names.contains_key("workload"),
        format!("{names:?}"),
    );
    // Check 2: the reference engine on the twin scenario (vm/workload.toml) counts the same.
    let kernel = tally(&kernel_rows);
    let engine = tally(&rows(engine_rows)?);
    let differ: Vec<String> = kernel
        .keys()
        .chain(engine.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| kernel.get(*k) != engine.get(*k))
        .map(|k| {
            format!(
                "{k}: kernel {} engine {}",
                kernel.get(k).copied().unwrap_or(0),
                engine.get(k).copied().unwrap_or(0)
            )
        })
        .collect();
    verdict(
        "the reference engine's twin scenario gives the kernel's per-kind counts",
        differ.is_empty() && !kernel.is_empty(),
        if differ.is_empty() {
            kernel
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            differ.join("; ")
        },
    );
    // Check 3: findings. The deterministic workload has none.
    let rc = section(out, "check-workload").trim().to_string();
    verdict(
        "report --check passes on the deterministic workload (no findings)",
        rc == "rc=0",
        rc,
    );
    // pingpong: one thrashing finding, on its region, K - 1 round trips, 2 K N pages moved.
    let pp = report(section(out, "report-pingpong"))?;
    let (k, n) = (8u64, 16u64);
    let thrash = pp.findings("thrashing");
    let want = region(out, "pingpong").map(|(a, pages)| (a, a + pages * 4096));
    let good = thrash.len() == 1
        && want.is_some()
        && thrash[0].range == want
        && thrash[0].counts.get("round_trips") == Some(&(k - 1))
        && thrash[0].counts.get("bytes") == Some(&(2 * k * n * 4096));
    verdict(
        "pingpong is one thrashing finding with its range, round trips and bytes",
        good,
        match (thrash.first(), want) {
            (Some(f), Some((a, b))) => format!(
                "{} (want {a:#x}..{b:#x}, round_trips={}, bytes={})",
                one_line(f),
                k - 1,
                2 * k * n * 4096
            ),
            _ => format!(
                "{} thrashing findings; region {:?}",
                thrash.len(),
                region(out, "pingpong")
            ),
        },
    );
    // retry: a retry storm on the mirrored range, with the invalidations behind it.
    let rt = report(section(out, "report-retry"))?;
    let storms = rt.findings("retry_storm");
    let want = region(out, "retry").map(|(a, pages)| (a, a + pages * 4096));
    let found = storms
        .iter()
        .find(|f| f.range == want && f.counts.get("invalidations").is_some_and(|n| *n > 0));
    verdict(
        "the two-thread mirror workload is a retry storm with its invalidations",
        found.is_some(),
        match found {
            Some(f) => one_line(f),
            None => format!(
                "{} retry storms ({}); range faults {}, retries {:?}",
                storms.len(),
                storms
                    .iter()
                    .map(|f| one_line(f))
                    .collect::<Vec<_>>()
                    .join("; "),
                rt.count("range_fault"),
                rt.kinds
                    .iter()
                    .find(|x| x.kind == "range_fault")
                    .and_then(|x| x.retries)
            ),
        },
    );
    // The whole hmm-tests run's findings, listed for the reader to explain.
    let listed = all.findings.as_ref().map_or(0, |f| f.list.len());
    println!("findings of the traced hmm-tests run: {listed}");
    for f in all.findings.iter().flat_map(|f| &f.list) {
        println!("  {}", one_line(f));
    }
    let problems: Vec<&str> = section(out, "dmesg")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    verdict(
        "no oops, BUG, WARNING or verifier message in the kernel log",
        problems.is_empty(),
        problems.join(" | "),
    );
    verdicts.finish()
}

/// The checks' verdicts: each printed as it is reached, the failed ones named at the end.
#[derive(Default)]
struct Verdicts {
    failed: Vec<String>,
}

impl Verdicts {
    fn check(&mut self, name: &str, ok: bool, detail: String) {
        println!("{} {name}: {detail}", if ok { "PASS" } else { "FAIL" });
        if !ok {
            self.failed.push(name.to_string());
        }
    }

    /// An error that names every failed check.
    fn finish(self) -> anyhow::Result<()> {
        let failed = self.failed;
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("{} VM check(s) failed: {}", failed.len(), failed.join("; "))
        }
    }
}

/// Discovery on test_hmm as a module (`=== discovery-modules`): both callbacks found through
/// its ops and attached, detached at `rmmod`, found and attached again after `insmod`, and in
/// each attached window the whole second workload timed (16 faults, 64 page frees with the
/// driver's callback timed: see workload.c).
fn discovery_checks(out: &str, verdict: &mut impl FnMut(&str, bool, String)) -> anyhow::Result<()> {
    let run = section(out, "discovery-modules");
    let r = report(section(out, "report-discovery-modules"))?;
    let events = rows(section(out, "export-discovery-modules"))?;
    // When each callback was attached, detached, attached again.
    let when = |what: &str| -> Vec<u64> {
        r.plan_changes
            .iter()
            .filter(|c| c.changes.iter().any(|l| l.contains(what)))
            .map(|c| c.at_ns)
            .collect()
    };
    let fault_on = when("dmirror_devmem_fault (migrate_to_ram) attached");
    let free_on = when("dmirror_devmem_free (page_free) attached");
    let off = when("test_hmm unloaded: dmirror_devmem_fault");
    let off_free = when("test_hmm unloaded: dmirror_devmem_free");
    let found = fault_on.len() == 2 && free_on.len() == 2 && off.len() == 1 && off_free.len() == 1;
    // Timed in [from, to): device faults, and page frees with the callback timed.
    let timed = |from: u64, to: u64| {
        let inside = |e: &&Row| e.ts_ns.is_some_and(|t| t >= from && t < to);
        let faults = events
            .iter()
            .filter(inside)
            .filter(|e| e.kind == "device_fault")
            .count();
        let frees = events
            .iter()
            .filter(inside)
            .filter(|e| e.kind == "page_free" && e.callback_ns.is_some_and(|n| n > 0))
            .count();
        (faults, frees)
    };
    let (first, second) = if found {
        (
            timed(fault_on[0].max(free_on[0]), off[0].min(off_free[0])),
            timed(fault_on[1].max(free_on[1]), u64::MAX),
        )
    } else {
        ((0, 0), (0, 0))
    };
    let between = if found {
        timed(off[0].max(off_free[0]), fault_on[1].min(free_on[1]))
    } else {
        (0, 0)
    };
    verdict(
        "discovery on a module: found, detached at rmmod, found again after insmod, and timed each time",
        run.contains("rc=0")
            && found
            && first.0 >= 16
            && first.1 >= 64
            && second.0 >= 16
            && second.1 >= 64
            && between == (0, 0),
        format!(
            "{}; timed while attached first {} faults, {} frees; second {} faults, {} frees; \
             between {} faults, {} frees",
            run.lines()
                .filter(|l| l.contains("discovered") || l.contains("unloaded"))
                .map(|l| l.trim_start_matches("hmmtrace: "))
                .collect::<Vec<_>>()
                .join("; "),
            first.0,
            first.1,
            second.0,
            second.1,
            between.0,
            between.1
        ),
    );
    // The race: whether or not test_hmm went before its ops were attached, no refusal, and
    // both callbacks attached in the end.
    let race = section(out, "discovery-race");
    let lines: Vec<&str> = race
        .lines()
        .filter_map(|l| l.strip_prefix("hmmtrace: "))
        .filter(|l| l.contains("discovered") || l.contains("unloaded"))
        .collect();
    let last_attached = |f: &str| {
        lines
            .iter()
            .rev()
            .find(|l| l.contains(f) && l.contains("discovered"))
            .is_some_and(|l| l.contains("attached (kprobe)"))
    };
    verdict(
        "discovery racing rmmod: no refusal blamed on the kernel, the callbacks attached after the reload",
        race.contains("rc=0")
            && !race.contains("denied")
            && last_attached("dmirror_devmem_fault")
            && last_attached("dmirror_devmem_free"),
        lines.join("; "),
    );
    Ok(())
}

/// `hmmtrace census --format json`, the fields the checks read.
#[derive(Debug, Deserialize)]
struct Census {
    symvers: Option<String>,
    exports: Vec<CensusExport>,
    modules: Vec<CensusModule>,
}

#[derive(Debug, Deserialize)]
struct CensusExport {
    name: String,
    export_type: String,
    importers: Vec<String>,
    callers: Vec<CensusCaller>,
}

#[derive(Debug, Deserialize)]
struct CensusCaller {
    function: String,
    module: String,
    calls: u64,
}

#[derive(Debug, Deserialize)]
struct CensusModule {
    name: String,
    file: Option<String>,
    license: Option<String>,
    taint: String,
    imports: Vec<String>,
}

/// The exports of the census's families that lib/test_hmm.c of 6.12 calls (read for this
/// check: its calls to hmm_range_fault, the migrate_vma_* and migrate_device_* families,
/// memremap_pages and memunmap_pages, zone_device_page_init, the interval notifier's
/// read_begin, insert and remove, and make_device_exclusive_range).
const TEST_HMM_IMPORTS: &[&str] = &[
    "hmm_range_fault",
    "make_device_exclusive_range",
    "memremap_pages",
    "memunmap_pages",
    "migrate_device_finalize",
    "migrate_device_pages",
    "migrate_device_range",
    "migrate_vma_finalize",
    "migrate_vma_pages",
    "migrate_vma_setup",
    "mmu_interval_notifier_insert",
    "mmu_interval_notifier_remove",
    "mmu_interval_read_begin",
    "zone_device_page_init",
];

/// The census in the modules guest: test_hmm and the out-of-tree census_probe as consumers,
/// run-time callers, and the exports nothing consumes checked against the source.
fn census_checks(
    out: &str,
    source: &std::path::Path,
    verdict: &mut impl FnMut(&str, bool, String),
) -> anyhow::Result<()> {
    let text = section(out, "census");
    let start = text.find('{').ok_or_else(|| {
        anyhow::anyhow!(
            "no census JSON in:\n{text}\n{}",
            section(out, "census-stderr")
        )
    })?;
    let c: Census = serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<Census>()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no census JSON"))??;
    let unknown: Vec<&str> = c
        .exports
        .iter()
        .filter(|e| e.export_type == "unknown")
        .map(|e| e.name.as_str())
        .collect();
    verdict(
        "census: the exports and their types come from the build's Module.symvers",
        c.symvers.is_some() && unknown.is_empty() && c.exports.len() >= TEST_HMM_IMPORTS.len(),
        format!(
            "{} exports from {}: {}",
            c.exports.len(),
            c.symvers.as_deref().unwrap_or("(none)"),
            c.exports
                .iter()
                .map(|e| format!("{} {}", e.name, e.export_type))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let module = |n: &str| c.modules.iter().find(|m| m.name == n);
    let test_hmm = module("test_hmm");
    let imports: Vec<&str> = test_hmm.map_or(Vec::new(), |m| {
        m.imports.iter().map(String::as_str).collect()
    });
    verdict(
        "census: test_hmm imports exactly the exports test_hmm.c calls, and is GPL, in tree",
        imports == TEST_HMM_IMPORTS
            && test_hmm.is_some_and(|m| {
                m.file.is_some() && m.license.as_deref() == Some("GPL") && !m.taint.contains('O')
            }),
        format!(
            "{:?}",
            test_hmm.map(|m| (&m.file, &m.license, &m.taint, &m.imports))
        ),
    );
    let probe = module("census_probe");
    verdict(
        "census: the harness's out-of-tree module shows with the out-of-tree taint and its two imports",
        probe.is_some_and(|m| {
            m.taint.contains('O')
                && m.imports == ["mmu_interval_notifier_insert", "mmu_interval_notifier_remove"]
        }),
        format!("{:?}", probe.map(|m| (&m.taint, &m.license, &m.imports))),
    );
    let export = |n: &str| c.exports.iter().find(|e| e.name == n);
    let called_by_test_hmm = |n: &str| {
        export(n).is_some_and(|e| {
            e.callers
                .iter()
                .any(|k| k.module == "test_hmm" && k.calls > 0)
        })
    };
    let listed = |n: &str| {
        export(n).map_or("absent".to_string(), |e| {
            e.callers
                .iter()
                .map(|k| format!("{} [{}] {}", k.function, k.module, k.calls))
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let insert_importers =
        export("mmu_interval_notifier_insert").map_or(Vec::new(), |e| e.importers.clone());
    verdict(
        "census: the workload's calls are seen from test_hmm, by caller",
        called_by_test_hmm("hmm_range_fault")
            && called_by_test_hmm("migrate_vma_setup")
            && insert_importers.contains(&"census_probe".to_string())
            && insert_importers.contains(&"test_hmm".to_string()),
        format!(
            "hmm_range_fault: {}; migrate_vma_setup: {}; mmu_interval_notifier_insert: {} (importers {:?})",
            listed("hmm_range_fault"),
            listed("migrate_vma_setup"),
            listed("mmu_interval_notifier_insert"),
            insert_importers
        ),
    );
    // What nothing consumes: each must be a real export of the 6.12 source that test_hmm.c
    // does not call; where in the tree it is used is said, from the source.
    let dangling: Vec<&CensusExport> = c
        .exports
        .iter()
        .filter(|e| e.importers.is_empty() && e.callers.is_empty())
        .collect();
    let mm: String = [
        "mm/hmm.c",
        "mm/migrate_device.c",
        "mm/memremap.c",
        "mm/mmu_notifier.c",
        "mm/rmap.c",
    ]
    .iter()
    .filter_map(|f| std::fs::read_to_string(source.join(f)).ok())
    .collect();
    let test_hmm_c = std::fs::read_to_string(source.join("lib/test_hmm.c")).unwrap_or_default();
    let mut wrong = Vec::new();
    let mut notes = Vec::new();
    for e in &dangling {
        let exported = mm.contains(&format!("EXPORT_SYMBOL({})", e.name))
            || mm.contains(&format!("EXPORT_SYMBOL_GPL({})", e.name));
        let used_by_test_hmm = test_hmm_c.contains(&format!("{}(", e.name));
        if !exported || used_by_test_hmm {
            wrong.push(format!(
                "{} (exported in the source: {exported}; called by test_hmm.c: {used_by_test_hmm})",
                e.name
            ));
        }
        let users = users_in_tree(source, &e.name);
        notes.push(format!(
            "{}: {}",
            e.name,
            if users.is_empty() {
                "no caller in drivers/".to_string()
            } else {
                format!("called in the tree by {}", users.join(", "))
            }
        ));
    }
    verdict(
        "census: the exports nothing consumes are real exports test_hmm.c does not call",
        !dangling.is_empty() && wrong.is_empty(),
        if wrong.is_empty() {
            notes.join("; ")
        } else {
            wrong.join("; ")
        },
    );
    let report = section(out, "census-report");
    verdict(
        "census: the capture keeps it and report shows it again",
        report.starts_with("census of") && report.contains("census_probe"),
        report.lines().next().unwrap_or("").to_string(),
    );
    Ok(())
}

/// Up to three files under drivers/ of the source that call `name`.
fn users_in_tree(source: &std::path::Path, name: &str) -> Vec<String> {
    let out = std::process::Command::new("grep")
        .args(["-rlw", "--include=*.c", name])
        .arg(source.join("drivers"))
        .output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .take(3)
            .map(|l| {
                l.trim_start_matches(&format!("{}/", source.display()))
                    .to_string()
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The modules variant's checks (`vm/init-modules`): a system-wide recording that starts
/// before test_hmm is loaded attaches to its callbacks when it is, times the deterministic
/// workload exactly as the built-in case does, and detaches cleanly when it is unloaded.
pub fn check_modules(out: &str, source: &std::path::Path) -> anyhow::Result<()> {
    finished(out)?;
    let mut verdicts = Verdicts::default();
    let mut verdict = |name: &str, ok: bool, detail: String| verdicts.check(name, ok, detail);
    let before = section(out, "modules-before");
    let insmod = section(out, "insmod");
    verdict(
        "test_hmm is a module, not loaded when the recording starts, then loaded",
        !before.contains("test_hmm") && insmod.contains("rc=0"),
        insmod.trim().replace('\n', "; "),
    );
    // "attached N driver kprobes after M ms"
    let attached = insmod
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("attached ")?;
            let (n, rest) = rest.split_once(' ')?;
            let ms = rest
                .strip_prefix("driver kprobes after ")?
                .strip_suffix(" ms")?;
            Some((n.parse::<u64>().ok()?, ms.parse::<u64>().ok()?))
        })
        .unwrap_or((0, u64::MAX));
    verdict(
        "the module's three callbacks are attached within a second of its load",
        attached.0 >= 3 && attached.1 <= 1000,
        format!("{} kprobes after {} ms", attached.0, attached.1),
    );
    let by_comm = report(section(out, "report-by-comm"))?;
    let workload = by_comm
        .groups
        .iter()
        .find(|g| g.group == "workload")
        .map(|g| Report {
            kinds: g
                .kinds
                .iter()
                .map(|k| KindReport {
                    kind: k.kind.clone(),
                    count: k.count,
                    pages: k.pages,
                    retries: k.retries,
                    latency_ns: k.latency_ns.as_ref().map(|l| Latency { min: l.min }),
                })
                .collect(),
            lost: by_comm.lost.clone(),
            ..Report::default()
        })
        .unwrap_or_default();
    let wrong = workload_differences(&workload);
    verdict(
        "the workload under the loaded module counts exactly as with test_hmm built in",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!(
                "{} migrations ({} pages), {} faults, {} frees, {} range fault",
                workload.count("migration"),
                workload.pages("migration"),
                workload.count("device_fault"),
                workload.count("page_free"),
                workload.count("range_fault")
            )
        } else {
            wrong.join("; ")
        },
    );
    census_checks(out, source, &mut verdict)?;
    discovery_checks(out, &mut verdict)?;
    let rmmod = section(out, "rmmod");
    let left = rmmod
        .lines()
        .find_map(|l| l.strip_prefix("detached: "))
        .unwrap_or("(no line)");
    verdict(
        "rmmod mid-session: the module unloads and its kprobes are gone while the recording runs",
        rmmod.contains("rc=0") && left.starts_with("0 driver kprobes left"),
        left.to_string(),
    );
    let stop = section(out, "stop");
    let stderr = section(out, "record-stderr");
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("error") || l.contains("warning") || l.contains("cannot")
        })
        .collect();
    verdict(
        "the recording ends normally with no error about the module",
        stop.contains("rc=0") && complaints.is_empty(),
        if complaints.is_empty() {
            stderr
                .lines()
                .filter(|l| l.contains("test_hmm"))
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            complaints.join("; ")
        },
    );
    let after = section(out, "kprobes-after");
    verdict(
        "nothing is left attached after the recording",
        after.trim().is_empty(),
        format!(
            "{} kprobes listed",
            after.lines().filter(|l| !l.trim().is_empty()).count()
        ),
    );
    let dmesg = section(out, "dmesg");
    verdict(
        "no oops, BUG, WARNING or verifier message in the kernel log",
        dmesg.trim().is_empty(),
        dmesg.trim().to_string(),
    );
    verdicts.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_costs_are_read_from_records_table() {
        let log = "=== traced\nok 1 hmm.a\nrecorded: 3 events\n\nprogram costs (the kernel's BPF run-time statistics):\n  program                          runs     ns/run\n  fentry_migrate_vma_setup          12       1500\n  kprobe_migrate_to_ram              3        900\n=== traced-aggregate\n\nprogram costs (the kernel's BPF run-time statistics):\n  program                          runs     ns/run\n  fentry_migrate_vma_setup          12        700\n=== end\n";
        assert_eq!(
            cost_table(log),
            vec![
                (
                    "fentry_migrate_vma_setup".to_string(),
                    (12, 1500.0),
                    Some((12, 700.0))
                ),
                ("kprobe_migrate_to_ram".to_string(), (3, 900.0), None),
            ]
        );
    }

    #[test]
    fn timings_are_grouped_by_mode() {
        let log = "=== timing\ntime untraced 10.50 14.00\ntime record 14.00 18.25\nnoise\ntime untraced 20.00 23.00\n=== dmesg\n";
        let t = timings(log);
        assert_eq!(t["untraced"], vec![3.5, 3.0]);
        assert_eq!(t["record"], vec![4.25]);
        assert!(!t.contains_key("aggregate"));
    }

    #[test]
    fn sections_and_outcomes_of_a_guest_log() {
        let log = "noise\n=== baseline\nok 1 hmm.a\nnot ok 2 hmm.b\nok 3 hmm.c # SKIP no hugetlbfs\n=== dmesg\n=== end\nreboot: Power down\n";
        assert_eq!(
            section(log, "dmesg"),
            "",
            "an empty section ends at the next marker"
        );
        let o = outcomes(section(log, "baseline"));
        assert_eq!(o["hmm.a"], "ok");
        assert_eq!(o["hmm.b"], "not ok");
        assert_eq!(o["hmm.c"], "skip");
        assert_eq!(section(log, "missing"), "");
        let r = report("{\"kinds\": [{\"kind\": \"page_free\", \"count\": 3, \"pages\": 3}], \"lost\": {\"migration\": 2}}\nadded new 256 MB chunk\n").unwrap();
        assert_eq!(
            (r.count("page_free"), r.lost()),
            (3, 2),
            "a kernel message after the JSON is ignored"
        );
        assert!(report("no json here").is_err());
    }

    #[test]
    fn the_workload_capture_is_decoded_around_kernel_messages() {
        // "hmmtrace" in base64, split over two lines with a kernel message between.
        let log = "=== capture-workload\naG1t\n[   12.3] random: crng init done\ndHJhY2U=\n=== workload-ebpf-log\n";
        assert_eq!(workload_capture(log).unwrap(), b"hmmtrace");
        assert!(workload_capture("=== capture-workload\n=== end\n").is_err());
    }

    #[test]
    fn tally_counts_kinds_events_and_pages() {
        let rows = rows(concat!(
            "{\"kind\":\"migration\",\"migrated\":64}\n",
            "a kernel message\n",
            "{\"kind\":\"migration\",\"api\":\"migrate_device\"}\n",
            "{\"kind\":\"interval_invalidate\",\"event\":\"UNMAP\",\"path\":\"callback\"}\n",
            "{\"kind\":\"range_fault\",\"npages\":32}\n",
        ))
        .unwrap();
        let t = tally(&rows);
        assert_eq!(t["migration"], 2);
        assert_eq!(
            t["migration.pages"], 64,
            "an unknown `migrated` adds nothing"
        );
        assert_eq!(t["interval_invalidate.UNMAP.callback"], 1);
        assert_eq!(t["range_fault.pages"], 32);
        assert!(super::rows("no events\n").is_err());
    }

    #[test]
    fn the_workload_check_names_what_differs() {
        let good = "{\"kinds\": [\
            {\"kind\": \"migration\", \"count\": 18, \"pages\": 80, \"latency_ns\": {\"min\": 5}},\
            {\"kind\": \"device_fault\", \"count\": 16, \"pages\": 16, \"latency_ns\": {\"min\": 5}},\
            {\"kind\": \"page_free\", \"count\": 64, \"pages\": 64, \"latency_ns\": {\"min\": 5}},\
            {\"kind\": \"range_fault\", \"count\": 1, \"pages\": 32, \"latency_ns\": {\"min\": 5}}]}";
        assert!(workload_differences(&report(good).unwrap()).is_empty());
        let bad = good.replace("\"count\": 16", "\"count\": 15");
        assert_eq!(
            workload_differences(&report(&bad).unwrap()),
            ["device_fault count: 15 (want 16)"]
        );
    }
}
