//! Reports and exports read by the tools people already use: Python's `hdrhistogram` reads the
//! HdrHistogram log, Perfetto's own Python protos decode the trace, headless Chromium draws the
//! HTML page. Each test says which tool it needs; the Python packages are installed with pip
//! when missing, and a test that cannot get its tool fails saying so.

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hmmtrace::capture::Reader;
use hmmtrace::report::{GroupBy, Summary};

fn hmmtrace(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_hmmtrace"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// A capture of `scenario`, in `dir`.
fn capture(dir: &Path, scenario: &str, seed: u64) -> PathBuf {
    let p = dir.join(format!("{scenario}-{seed}.hmt"));
    let (code, _, err) = hmmtrace(&[
        "sim",
        "-s",
        scenario,
        "--seed",
        &seed.to_string(),
        "-o",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    p
}

/// `hmmtrace export CAP --format perfetto -o OUT`, which must succeed.
fn perfetto(cap: &Path, out: &Path) {
    let (code, _, err) = hmmtrace(&[
        "export",
        cap.to_str().unwrap(),
        "--format",
        "perfetto",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
}

fn summary(path: &Path) -> Summary {
    let r = Reader::open(path).unwrap();
    let mut s = Summary::grouped(GroupBy::Kind, &r.header.clone(), false);
    r.for_each(|e| {
        s.add(e);
        Ok(())
    })
    .unwrap();
    s
}

/// Runs a Python script, installing `package` (import name `module`) with pip first if needed.
fn python(module: &str, package: &str, script: &str) -> String {
    let have = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        let pip = Command::new("python3")
            .args(["-m", "pip", "install", "-q", package])
            .output()
            .expect("this test needs python3 (with pip) to check the output independently");
        assert!(
            pip.status.success(),
            "this test needs the Python package {package} and pip could not install it: {}",
            String::from_utf8_lossy(&pip.stderr)
        );
    }
    let o = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into()
}

#[test]
fn python_hdrhistogram_reads_the_interval_log_as_the_same_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "gpu-stream", 4);
    let log = dir.path().join("g.hlog");
    let (code, _, err) = hmmtrace(&[
        "report",
        cap.to_str().unwrap(),
        "--hdr-log",
        log.to_str().unwrap(),
        "--hdr-interval",
        "50ms",
    ]);
    assert_eq!(code, 0, "{err}");
    let script = format!(
        r#"
from hdrh.log import HistogramLogReader
from hdrh.histogram import HdrHistogram
r = HistogramLogReader({log:?}, HdrHistogram(1, 3600 * 10**9, 3))
per, intervals = {{}}, 0
while True:
    h = r.get_next_interval_histogram()
    if h is None:
        break
    intervals += 1
    t = h.get_tag()
    if t in per:
        per[t].add(h)
    else:
        per[t] = h
print("intervals", intervals)
for t, h in sorted(per.items()):
    pairs = " ".join("%d:%d" % (v.value_iterated_to, v.count_at_value_iterated_to) for v in h.get_recorded_iterator())
    print(t, h.get_total_count(), h.get_max_value(), pairs)
"#,
        log = log.display().to_string()
    );
    let out = python("hdrh", "hdrhistogram", &script);
    let mut lines = out.lines();
    let intervals: u64 = lines.next().unwrap()["intervals ".len()..].parse().unwrap();
    let s = summary(&cap);
    let span_ms = s.span_ns() / 50_000_000;
    assert!(
        intervals > span_ms,
        "{intervals} interval histograms over {span_ms} intervals"
    );
    let mut seen = 0;
    for line in lines {
        let mut f = line.split(' ');
        let tag = f.next().unwrap();
        let count: u64 = f.next().unwrap().parse().unwrap();
        let max: u64 = f.next().unwrap().parse().unwrap();
        let pairs: Vec<(u64, u64)> = f
            .map(|p| {
                let (v, c) = p.split_once(':').unwrap();
                (v.parse().unwrap(), c.parse().unwrap())
            })
            .collect();
        let (_, k) = s.kinds.iter().find(|(k, _)| k.name() == tag).unwrap();
        let h = k.latency.histogram();
        assert_eq!(count, h.len(), "{tag}");
        assert_eq!(max, h.max(), "{tag}");
        let ours: Vec<(u64, u64)> = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        assert_eq!(
            pairs, ours,
            "{tag}: the same buckets and counts, so every percentile agrees"
        );
        seen += 1;
    }
    let timed = s
        .kinds
        .iter()
        .filter(|(_, k)| k.latency.count() > 0)
        .count();
    assert!(timed >= 5, "gpu-stream times most kinds");
    assert_eq!(
        seen, timed,
        "one tag per timed kind, the kinds a report counts: {out}"
    );
}

#[test]
fn perfettos_own_protos_decode_the_trace_with_its_tracks_and_slices() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "multiple_devices", 1);
    let out = dir.path().join("t.pftrace");
    perfetto(&cap, &out);
    let script = format!(
        r#"
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TrackEvent
t = Trace()
t.ParseFromString(open({out:?}, "rb").read())
tracks, begins, ends, instants, counters = {{}}, 0, 0, 0, 0
names, args, strings, seen_names, seen_args = {{}}, {{}}, {{}}, set(), set()
for p in t.packet:
    # Interned strings come before their first use, on the one sequence.
    if p.HasField("interned_data"):
        for n in p.interned_data.event_names: names[n.iid] = n.name
        for n in p.interned_data.debug_annotation_names: args[n.iid] = n.name
        for n in p.interned_data.debug_annotation_string_values: strings[n.iid] = n.str.decode()
    if p.HasField("track_descriptor"):
        d = p.track_descriptor
        kind = "process" if d.HasField("process") else "thread" if d.HasField("thread") else "counter" if d.HasField("counter") else "child"
        tracks[d.uuid] = (kind, d.name or d.process.process_name or d.thread.thread_name, d.parent_uuid)
    elif p.HasField("track_event"):
        e = p.track_event
        assert e.track_uuid in tracks, "event on an undescribed track"
        if e.type == TrackEvent.TYPE_SLICE_BEGIN: begins += 1
        elif e.type == TrackEvent.TYPE_SLICE_END: ends += 1
        elif e.type == TrackEvent.TYPE_INSTANT: instants += 1
        elif e.type == TrackEvent.TYPE_COUNTER: counters += 1
        if e.type in (TrackEvent.TYPE_SLICE_BEGIN, TrackEvent.TYPE_INSTANT):
            seen_names.add(e.name or names[e.name_iid])
            for a in e.debug_annotations:
                value = strings[a.string_value_iid] if a.HasField("string_value_iid") else ""
                seen_args.add((a.name or args[a.name_iid]) + ("=" + value if value else ""))
print(len(t.packet), begins, ends, instants, counters)
print("names", "|".join(sorted(seen_names)))
print("args", "|".join(sorted(seen_args)))
for u, (kind, name, parent) in sorted(tracks.items(), key=lambda x: (x[1][0], x[1][1])):
    print(kind, name, tracks.get(parent, ("-",))[0])
"#,
        out = out.display().to_string()
    );
    let text = python("perfetto", "perfetto", &script);
    let mut lines = text.lines();
    let nums: Vec<u64> = lines
        .next()
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    let events = summary(&cap).events;
    let (begins, ends, instants) = (nums[1], nums[2], nums[3]);
    assert_eq!(begins, ends, "every slice ends");
    assert_eq!(begins + instants, events, "one slice or instant per event");
    assert!(nums[4] > 0, "counters");
    // Slice names and arguments resolve through the interned data to the export's words.
    let names: Vec<&str> = lines.next().unwrap()["names ".len()..].split('|').collect();
    for n in [
        "migration to_device",
        "device_fault",
        "invalidation MIGRATE",
    ] {
        assert!(names.contains(&n), "{n} not among {names:?}");
    }
    let args: Vec<&str> = lines.next().unwrap()["args ".len()..].split('|').collect();
    for a in ["npages", "migrated", "api=migrate_vma"] {
        assert!(args.contains(&a), "{a} not among {args:?}");
    }
    let tracks: Vec<&str> = lines.collect();
    assert!(tracks.contains(&"process hmm-tests -"), "{tracks:?}");
    assert!(tracks.contains(&"thread hmm-tests process"), "{tracks:?}");
    assert!(tracks.contains(&"child migration thread"), "{tracks:?}");
    for dev in ["dmirror0", "dmirror1"] {
        assert!(
            tracks.contains(&format!("counter {dev} events /s -").as_str()),
            "a counter track per device: {tracks:?}"
        );
    }
}

#[test]
fn headless_chromium_draws_the_html_reports_plots() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "migrate_fault", 1);
    let html = dir.path().join("r.html");
    let (code, _, err) = hmmtrace(&[
        "report",
        cap.to_str().unwrap(),
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    // Self-contained: no scripts, nothing fetched.
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="));
    assert!(page.contains("No events were lost"));
    // Findings (none here), device pages, the heat map, then each kind's plots.
    for section in [
        r#"id="findings""#,
        r#"id="devices""#,
        r#"id="heat""#,
        r#"id="migration""#,
    ] {
        assert!(page.contains(section), "{section}");
    }
    let shot = dir.path().join("r.png");
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("this test needs headless Chromium (Debian package chromium; cargo xtask setup installs it as root)");
    let o = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .args(["--window-size=1000,3000"])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bpp = info.color_type.samples();
    // The plots' colour (report::html::STROKE, #1f77b4), give or take anti-aliasing.
    let plotted = buf[..info.buffer_size()]
        .chunks(bpp)
        .filter(|p| {
            (p[0] as i32 - 0x1f).abs() < 12
                && (p[1] as i32 - 0x77).abs() < 12
                && (p[2] as i32 - 0xb4).abs() < 12
        })
        .count();
    assert!(
        plotted > 2000,
        "only {plotted} plot-coloured pixels: the plots were not drawn"
    );
}

#[test]
fn a_perfetto_trace_is_of_the_captures_order_of_size() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "gpu-stream", 1);
    let out = dir.path().join("g.pftrace");
    perfetto(&cap, &out);
    let (c, p) = (
        std::fs::metadata(&cap).unwrap().len(),
        std::fs::metadata(&out).unwrap().len(),
    );
    // Interned names and small track ids: about 6.5x the capture (it was 13.6x with every
    // string spelt out in every packet). Its speed is `cargo xtask bench`'s to measure.
    assert!(p < 10 * c, "{p} bytes of trace for a {c}-byte capture");
}

#[test]
fn system_migrations_export_mode_and_reason_by_the_kernels_names() {
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/host-compaction.hmt");
    let (code, out, err) = hmmtrace(&["export", cap.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r["kind"], "system_migration");
        assert!(
            r["mode"]
                .as_str()
                .is_some_and(|m| m.starts_with("MIGRATE_")),
            "{r}"
        );
        assert!(r["reason"].is_string(), "{r}");
    }
    assert!(rows.iter().any(|r| r["reason"] == "compaction"));
    let (code, csv, _) = hmmtrace(&["export", cap.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(code, 0);
    assert!(csv.contains(",MIGRATE_SYNC,compaction,"), "{csv}");
}
