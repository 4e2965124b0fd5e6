//! `--format html`: one self-contained page (no scripts, no network) with, per kind, the
//! percentile spectrum on log scales and the rate over time, both as inline SVG, and the
//! summary table, the probe plan and lost events.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::text::{fmt_ns, rate};
use super::{RateSeries, Summary, PERCENTILES, SIGNIFICANT_DIGITS};
use crate::capture::CaptureHeader;

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 16.0;
const RIGHT: f64 = 34.0;
/// Plot colour of each figure's data (the screenshot test looks for it).
pub const STROKE: &str = "#1f77b4";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The percentile spectrum: x = log10(1 / (1 - percentile)) up to 99.999 %, y = latency on a
/// log scale, a step line through HdrHistogram's percentile iteration.
fn spectrum(h: &Histogram<u64>) -> String {
    let pts: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to().min(0.99999);
            (
                (1.0 / (1.0 - q)).log10(),
                (v.value_iterated_to().max(1) as f64).log10(),
            )
        })
        .collect();
    let (ymin, ymax) = (
        pts.iter().map(|p| p.1).fold(f64::MAX, f64::min).floor(),
        pts.iter().map(|p| p.1).fold(0.0, f64::max).ceil().max(1.0),
    );
    let ymax = if ymax <= ymin { ymin + 1.0 } else { ymax };
    let x = |v: f64| LEFT + v / 5.0 * (W - LEFT - RIGHT);
    let y = |v: f64| H - BOTTOM - (v - ymin) / (ymax - ymin) * (H - BOTTOM - TOP);
    let mut svg = open_svg("percentile spectrum");
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let xv = x(i as f64);
        let _ = write!(
            svg,
            r##"<line x1="{xv:.1}" y1="{TOP}" x2="{xv:.1}" y2="{:.1}" stroke="#ddd"/><text x="{xv:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 16.0
        );
    }
    let mut d = ymin as i32;
    while f64::from(d) <= ymax {
        let yv = y(f64::from(d));
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{yv:.1}" x2="{:.1}" y2="{yv:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yv + 4.0,
            fmt_ns(10u64.pow(d.max(0) as u32))
        );
        d += 1;
    }
    let path: Vec<String> = pts
        .iter()
        .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
        .collect();
    let _ = write!(
        svg,
        r#"<polyline fill="none" stroke="{STROKE}" stroke-width="2" points="{}"/>"#,
        path.join(" ")
    );
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text></svg>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 4.0
    );
    svg
}

/// Events per second over the capture, as bars of the series' bins.
fn rates(series: &RateSeries) -> String {
    let n = series.counts.len().max(1);
    let per_s = 1e9 / series.bin_ns as f64;
    let max = series.counts.iter().copied().max().unwrap_or(0).max(1) as f64 * per_s;
    let bar = (W - LEFT - RIGHT) / n as f64;
    let y = |v: f64| H - BOTTOM - v / max * (H - BOTTOM - TOP);
    let mut svg = open_svg("rate over time");
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#ddd"/><text x="{2:.1}" y="{3:.1}" text-anchor="end">{4:.0}/s</text>"##,
            y(v),
            W - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            v
        );
    }
    for (i, c) in series.counts.iter().enumerate() {
        let v = *c as f64 * per_s;
        let _ = write!(
            svg,
            r#"<rect x="{:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill="{STROKE}"/>"#,
            LEFT + i as f64 * bar,
            y(v),
            (bar - 0.5).max(0.5),
            H - BOTTOM - y(v)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time from the first event (bins of {})</text></svg>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 4.0,
        fmt_ns(series.bin_ns)
    );
    svg
}

fn open_svg(label: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{label}" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
    )
}

pub fn render(s: &Summary, header: &CaptureHeader, title: &str) -> String {
    let dropped_bytes = s.dropped_bytes;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>hmmtrace report: {t}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}
.lost{{background:#c00;color:#fff;padding:8px;font-weight:bold}}.ok{{color:#070}}section{{margin-top:2em}}figure{{display:inline-block;margin:0 1em 1em 0}}</style>
</head><body><h1>hmmtrace report</h1><p>{t}: {} events over {}. Latencies are entry-to-exit durations from HdrHistogram histograms, exact to {SIGNIFICANT_DIGITS} significant digits.</p>"#,
        s.events,
        fmt_ns(s.span_ns()),
        t = esc(title)
    );
    let lost = s.total_lost();
    if lost > 0 {
        let per: Vec<String> = s
            .lost
            .iter()
            .map(|(p, n)| format!("{} {n}", esc(p)))
            .collect();
        let _ = write!(
            o,
            r#"<p class="lost" id="lost">LOST {lost} events (the ring buffer was full): {}</p>"#,
            per.join(", ")
        );
    } else {
        o.push_str(r#"<p class="ok" id="lost">No events were lost.</p>"#);
    }
    if dropped_bytes > 0 {
        let _ = write!(
            o,
            r#"<p class="lost">The capture's last block was incomplete: {dropped_bytes} bytes dropped.</p>"#
        );
    }
    o.push_str("<h2>Summary</h2><table><tr><th>kind</th><th>count</th><th>rate/s</th><th>pages</th><th>min</th>");
    for (label, _) in PERCENTILES {
        let _ = write!(o, "<th>{label}</th>");
    }
    o.push_str("<th>mean</th><th>stddev</th></tr>");
    for (kind, k) in &s.kinds {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td>",
            kind.name(),
            k.count,
            rate(k.count, s.span_ns()),
            k.pages
        );
        let h = &k.latency;
        if h.is_empty() {
            o.push_str(&"<td>-</td>".repeat(PERCENTILES.len() + 3));
        } else {
            let _ = write!(o, "<td>{}</td>", fmt_ns(h.min()));
            for (_, q) in PERCENTILES {
                let _ = write!(o, "<td>{}</td>", fmt_ns(h.value_at_quantile(q)));
            }
            let _ = write!(
                o,
                "<td>{}</td><td>{}</td>",
                fmt_ns(h.mean().round() as u64),
                fmt_ns(h.stdev().round() as u64)
            );
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    for (kind, k) in &s.kinds {
        let _ = write!(o, r#"<section id="{0}"><h2>{0}</h2>"#, kind.name());
        if !k.latency.is_empty() {
            let _ = write!(
                o,
                "<figure>{}<figcaption>{} latency by percentile (log scales)</figcaption></figure>",
                spectrum(&k.latency),
                kind.name()
            );
        }
        if let Some(series) = s.series.get(kind) {
            let _ = write!(
                o,
                "<figure>{}<figcaption>{} per second</figcaption></figure>",
                rates(series),
                kind.name()
            );
        }
        o.push_str("</section>");
    }
    o.push_str("<h2>Probe plan</h2>");
    if header.probe_plan.is_empty() {
        let _ = write!(
            o,
            "<p>No probes: the events come from {}.</p>",
            esc(&header.source)
        );
    } else {
        o.push_str(
            "<table><tr><th>probe</th><th>symbol</th><th>mechanism</th><th>status</th></tr>",
        );
        for p in &header.probe_plan {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p.probe().name()),
                esc(&p.symbol),
                esc(&p.status.attached().map_or("-".into(), |m| m.to_string())),
                esc(&p.status.to_string())
            );
        }
        o.push_str("</table>");
    }
    let _ = writeln!(
        o,
        "<p>Source {}, host {}, kernel {}.</p></body></html>",
        esc(&header.source),
        esc(&header.host),
        esc(if header.kernel_release.is_empty() {
            "-"
        } else {
            &header.kernel_release
        })
    );
    o
}
