//! In-process benchmark figures for `cargo xtask bench` (the standard harness is not used:
//! each figure is one measured run, printed as a JSON line the xtask collects).
//!
//!   figures pipeline N          decode → aggregate → capture writer, N ring records, one core
//!   figures detectors N         the same, without and with every detector, in one run
//!   figures engine SCENARIO     the engine alone (no sink but a count) on a scenario file
//!   figures make-capture N OUT  a capture of N events (gpu-stream's, repeated, clock shifted)
//!   figures ring RATE SECS [RING_BYTES]
//!                               (root) the stress program on syscalls:sys_enter_getppid fired
//!                               RATE times a second (0: as fast as one thread can) for SECS,
//!                               through the real ring buffer (4 MiB unless given): delivered
//!                               and lost

// A test target sees every dependency of the package; unused ones are caught on the library.
#![allow(unused_crate_dependencies)]

use std::time::{Duration, Instant};

use hmmtrace::capture::{CaptureHeader, Writer};
use hmmtrace::event::Event;
use hmmtrace::report::Summary;

/// gpu-stream's events: realistic kinds, sizes and values.
fn sample() -> (CaptureHeader, Vec<Event>) {
    let s = hmmtrace::scenario::Scenario::load("gpu-stream").expect("built-in");
    let mut v = Vec::new();
    s.run(1, &mut |e| {
        v.push(*e);
        Ok(())
    })
    .expect("gpu-stream runs");
    (hmmtrace::pipeline::source::engine::header(&s, 1), v)
}

/// `n` events: the sample repeated, each repetition later on the clock.
fn events(sample: &[Event], n: u64, mut f: impl FnMut(&Event)) {
    let span = sample.last().map_or(1, |e| e.ts_ns + 1_000_000);
    let mut i = 0u64;
    'outer: for round in 0.. {
        for e in sample {
            if i == n {
                break 'outer;
            }
            let mut e = *e;
            e.ts_ns += round * span;
            f(&e);
            i += 1;
        }
    }
}

fn pipeline(n: u64) {
    let (header, sample) = sample();
    // The ring's memory: records back to back, as the kernel leaves them.
    let records: Vec<Vec<u8>> = sample.iter().map(Event::to_wire).collect();
    let mut summary = Summary::default();
    let mut writer = Writer::new(std::io::sink(), &header).expect("header");
    let rounds = n.div_ceil(records.len() as u64);
    let start = Instant::now();
    let mut done = 0u64;
    for round in 0..rounds {
        for r in &records {
            if done == n {
                break;
            }
            let mut e = Event::from_wire(r).expect("valid record");
            e.ts_ns += round * 1_000_000_000;
            summary.add(&e);
            writer.write_event(&e).expect("sink");
            done += 1;
        }
    }
    writer.close().expect("sink");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(summary.events, n);
    println!(
        "{{\"figure\":\"pipeline\",\"events\":{n},\"secs\":{secs},\"events_per_s\":{}}}",
        n as f64 / secs
    );
}

/// The pipeline of [`pipeline`] without and then with the detectors (and a tick of the
/// source's clock every 4096 events, as sources tick): events per second of each, one core.
fn detectors(n: u64) {
    let (header, sample) = sample();
    let records: Vec<Vec<u8>> = sample.iter().map(Event::to_wire).collect();
    let span = sample.last().map_or(1, |e| e.ts_ns + 1_000_000);
    let run = |detect: bool| -> (f64, u64) {
        let mut summary = Summary::default();
        let mut writer = Writer::new(std::io::sink(), &header).expect("header");
        let mut d = hmmtrace::findings::Detectors::new(hmmtrace::findings::Config::default());
        d.begin(&header);
        let mut found = Vec::new();
        let mut findings = 0u64;
        let start = Instant::now();
        let mut done = 0u64;
        'outer: for round in 0.. {
            for r in &records {
                if done == n {
                    break 'outer;
                }
                let mut e = Event::from_wire(r).expect("valid record");
                e.ts_ns += round * span;
                summary.add(&e);
                writer.write_event(&e).expect("sink");
                if detect {
                    d.event(&e, &mut found);
                    if done.is_multiple_of(4096) {
                        d.tick(e.ts_ns, &mut found);
                    }
                    findings += found.len() as u64;
                    found.clear();
                }
                done += 1;
            }
        }
        if detect {
            d.finish(&mut found);
            findings += found.len() as u64;
        }
        writer.close().expect("sink");
        (n as f64 / start.elapsed().as_secs_f64(), findings)
    };
    let (without, _) = run(false);
    let (with, findings) = run(true);
    println!(
        "{{\"figure\":\"detectors\",\"events\":{n},\"without_per_s\":{without},\"with_per_s\":{with},\"findings\":{findings}}}"
    );
}

fn make_capture(n: u64, out: &str) {
    let (header, sample) = sample();
    let file = std::fs::File::create(out).expect("create capture");
    let mut w = Writer::new(std::io::BufWriter::with_capacity(1 << 20, file), &header).unwrap();
    events(&sample, n, |e| w.write_event(e).expect("write"));
    let (events, bytes) = w.close().unwrap();
    println!("{{\"figure\":\"make-capture\",\"events\":{events},\"bytes\":{bytes}}}");
}

/// A capture read and decoded, then summarised: where report's time goes.
fn read(path: &str) {
    let start = Instant::now();
    let mut n = 0u64;
    hmmtrace::capture::Reader::open(std::path::Path::new(path))
        .expect("open")
        .for_each(|_| {
            n += 1;
            Ok(())
        })
        .expect("read");
    let decode = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut s = Summary::default();
    hmmtrace::capture::Reader::open(std::path::Path::new(path))
        .expect("open")
        .for_each(|e| {
            s.add(e);
            Ok(())
        })
        .expect("read");
    let both = start.elapsed().as_secs_f64();
    println!(
        "{{\"figure\":\"read\",\"events\":{n},\"decode_per_s\":{},\"decode_and_summary_per_s\":{}}}",
        n as f64 / decode,
        n as f64 / both
    );
}

fn ring(rate: u64, secs: f64, ring_bytes: u32) {
    use hmmtrace::kernel::{Session, SessionOptions};
    let me = std::process::id();
    let mut session = Session::start(&SessionOptions {
        stress: true,
        tgids: vec![me],
        ring_bytes,
        ..Default::default()
    })
    .expect("the stress program loads (needs root)");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let firer = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut fired = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..1000 {
                    // SAFETY: getppid(2) has no arguments and cannot fail.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                fired += 1000;
                if rate > 0 {
                    let due = Duration::from_secs_f64(fired as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            (fired, start.elapsed().as_secs_f64())
        })
    };
    let (mut delivered, mut lost) = (0u64, 0u64);
    let start = Instant::now();
    let mut count = |e: &Event| {
        match e.body {
            hmmtrace::event::Body::Lost(l) => lost += l.count,
            _ => delivered += 1,
        }
        Ok(())
    };
    while start.elapsed().as_secs_f64() < secs {
        if session.drain(&mut count).expect("drain") == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (fired, fire_secs) = firer.join().expect("firer");
    // What is still in the ring was delivered late, not lost.
    session.drain(&mut count).expect("drain");
    println!(
        "{{\"figure\":\"ring\",\"ring_bytes\":{ring_bytes},\"record_bytes\":{},\"target_rate\":{rate},\"fired\":{fired},\"fired_per_s\":{},\"delivered\":{delivered},\"lost\":{lost}}}",
        // What the stress program sends per event: a system-migration record.
        hmmtrace_common::record_size(hmmtrace_common::EventKind::SystemMigration),
        fired as f64 / fire_secs
    );
}

/// The engine alone: events and seconds of one run, and the process's peak RSS.
fn engine(path: &str) {
    let s = hmmtrace::scenario::Scenario::load(path).expect("a valid scenario");
    let mut events = 0u64;
    let start = Instant::now();
    s.run(s.seed, &mut |_| {
        events += 1;
        Ok(())
    })
    .expect("the scenario runs");
    let secs = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    println!(
        "{{\"figure\":\"engine\",\"events\":{events},\"secs\":{secs:.3},\"events_per_s\":{:.0},\"peak_rss_kb\":{hwm_kb}}}",
        events as f64 / secs
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("argument {i} must be a number: {args:?}"))
    };
    match args.first().map(String::as_str) {
        Some("pipeline") => pipeline(num(1)),
        Some("detectors") => detectors(num(1)),
        Some("engine") => engine(&args[1]),
        Some("make-capture") => make_capture(num(1), &args[2]),
        Some("read") => read(&args[1]),
        Some("ring") => ring(
            num(1),
            num(2) as f64,
            args.get(3).map_or(4 << 20, |_| num(3) as u32),
        ),
        // `cargo bench` with no arguments runs a short pipeline figure.
        None => pipeline(2_000_000),
        Some(other) => panic!("unknown figure '{other}' (pipeline, detectors, make-capture, ring)"),
    }
}
