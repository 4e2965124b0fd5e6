//! `--format html`: one self-contained page (no scripts, no network) with the summary table
//! (and the groups of `--by`), per kind the percentile spectrum and the rate over time, the
//! device pages, the findings, the address-space heat map, the probe plan and lost events. The
//! plots are SVG drawn with plotters' SVG backend, inline.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::text::fmt_ns;
use super::{KindStats, RateSeries, Summary, PERCENTILES, SIGNIFICANT_DIGITS};
use crate::capture::CaptureHeader;
use crate::event::Class;
use crate::stats::{rate, Durations};

const W: u32 = 720;
const H: u32 = 260;
/// Plot colour of each figure's data (the screenshot test looks for it).
pub const STROKE: &str = "#1f77b4";
const DATA: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
/// A rate chart aims for this many events per bin on average (fewer bins for fewer events),
/// so that one event does not read as a rate.
const EVENTS_PER_BIN: u64 = 10;
/// And shows at most this many bins.
const MAX_CHART_BINS: usize = 120;

/// `s` as HTML text (also the census section's, `census::render`).
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Draws into an SVG string; a drawing error (none is expected for in-memory SVG) leaves a
/// note instead of a figure.
fn svg(
    label: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> anyhow::Result<()>,
) -> String {
    let mut out = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(|e| anyhow::anyhow!("{e}")))
    };
    match drawn {
        // plotters writes no accessible name; a figure has one.
        Ok(()) => out.replacen(
            "<svg ",
            &format!(r#"<svg role="img" aria-label="{}" "#, esc(label)),
            1,
        ),
        Err(e) => format!(
            "<p>({label} could not be drawn: {})</p>",
            esc(&e.to_string())
        ),
    }
}

/// The percentile spectrum: x = log10(1 / (1 - percentile)) up to 99.999 %, y = latency on a
/// log scale, through HdrHistogram's percentile iteration, ending at the exact maximum.
fn spectrum(d: &Durations) -> String {
    let mut pts: Vec<(f64, f64)> = d
        .histogram()
        .iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to().min(0.99999);
            let ns = v
                .value_iterated_to()
                .clamp(d.min().unwrap_or(1), d.max().unwrap_or(1));
            ((1.0 / (1.0 - q)).log10(), ns.max(1) as f64)
        })
        .collect();
    if let Some(last) = pts.last_mut() {
        last.1 = d.max().unwrap_or(1).max(1) as f64;
    }
    let lo = pts.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    let hi = pts.iter().map(|p| p.1).fold(1.0, f64::max);
    // Whole decades around the data, at least one.
    let (lo, hi) = (
        10f64.powf(lo.log10().floor()),
        10f64.powf(hi.log10().ceil()),
    );
    let hi = if hi <= lo { lo * 10.0 } else { hi };
    svg("latency by percentile", |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..5f64, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&|x| {
                ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
                    .get(x.round() as usize)
                    .copied()
                    .unwrap_or("")
                    .to_string()
            })
            .y_label_formatter(&|y| fmt_ns(y.round() as u64))
            .x_desc("percentile")
            .y_desc("latency")
            .draw()?;
        chart.draw_series(LineSeries::new(pts, DATA.stroke_width(2)))?;
        Ok(())
    })
}

/// Events per second over the capture: the series' bins merged so that a bin holds about
/// [`EVENTS_PER_BIN`] events on average, as steps, on a time axis in the unit the span needs.
fn rates(series: &RateSeries) -> String {
    let (bin_ns, counts) = chart_bins(series);
    let per_s = 1e9 / bin_ns as f64;
    let span_ns = bin_ns * counts.len() as u64;
    let (unit, div) = time_unit(span_ns);
    let x_max = span_ns as f64 / div;
    let y_max = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * per_s * 1.1;
    svg("rate over time", |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(5)
            .x_label_formatter(&|x| format!("{}{unit}", trim(*x)))
            .y_label_formatter(&|y| format!("{}/s", count(*y)))
            .x_desc(format!(
                "time from the first event (bins of {})",
                fmt_ns(bin_ns)
            ))
            .y_desc("events per second")
            .draw()?;
        let steps = counts.iter().enumerate().flat_map(|(i, c)| {
            let v = *c as f64 * per_s;
            let x0 = (i as u64 * bin_ns) as f64 / div;
            let x1 = ((i as u64 + 1) * bin_ns) as f64 / div;
            [(x0, v), (x1, v)]
        });
        chart.draw_series(
            AreaSeries::new(steps, 0.0, DATA.mix(0.35)).border_style(DATA.stroke_width(2)),
        )?;
        Ok(())
    })
}

/// The chart's bins: the series' bins merged so that there are at most `total / EVENTS_PER_BIN`
/// (and [`MAX_CHART_BINS`]); their width, and the count in each.
fn chart_bins(series: &RateSeries) -> (u64, Vec<u64>) {
    let total: u64 = series.counts.iter().sum();
    let wanted = ((total / EVENTS_PER_BIN).max(1) as usize).min(MAX_CHART_BINS);
    let merge = series.counts.len().div_ceil(wanted).max(1);
    let counts = series
        .counts
        .chunks(merge)
        .map(|c| c.iter().sum())
        .collect();
    (series.bin_ns * merge as u64, counts)
}

/// Device pages per device: in, back, evicted, freed, held, and how long pages lived there.
fn devices_table(o: &mut String, s: &Summary) {
    let devices = s.devices();
    if devices.is_empty() {
        return;
    }
    o.push_str(
        r#"<h2 id="devices">Device pages</h2><table><tr><th class="l">device</th><th>in</th><th>back</th><th>evicted</th><th>freed</th><th>held</th><th>lived p50</th><th>p90</th><th>p99</th><th>max</th><th>unmeasured</th></tr>"#,
    );
    for (name, d) in devices {
        let _ = write!(o, r#"<tr><td class="l">{}</td>"#, esc(&name));
        for cell in super::device_cells(d) {
            let _ = write!(o, "<td>{cell}</td>");
        }
        o.push_str("</tr>");
    }
    o.push_str(
        "</table><p>held: migrated in and not freed. lived: time on the device of the pages \
         that left it by migration back or unmap; unmeasured: pages resident while the device \
         evicted by pfn, which names no address.</p>",
    );
}

/// The findings, worst first.
fn findings_table(o: &mut String, s: &Summary) {
    let f = &s.findings;
    if !f.checked && f.is_empty() {
        return;
    }
    let _ = write!(
        o,
        r#"<h2 id="findings">Findings</h2><p>{}</p>"#,
        esc(&f.summary())
    );
    if f.kept.is_empty() {
        return;
    }
    o.push_str(
        r#"<table><tr><th class="l">severity</th><th class="l">kind</th><th class="l">process</th><th class="l">device</th><th class="l">where</th><th>from</th><th>to</th><th class="l">what</th><th class="l">evidence</th></tr>"#,
    );
    let mut kept: Vec<&crate::findings::Finding> = f.kept.iter().collect();
    kept.sort_by_key(|x| (std::cmp::Reverse(x.severity), x.first_ns));
    let t0 = if s.events > 0 { s.first_ts } else { 0 };
    for x in kept {
        let place = match (&x.symbol, x.range) {
            (Some(sym), Some((a, b))) => format!("{sym} {a:#x}..{b:#x}"),
            (Some(sym), None) => sym.clone(),
            (None, Some((a, b))) => format!("{a:#x}..{b:#x}"),
            (None, None) => "-".into(),
        };
        let evidence: Vec<String> = x.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = write!(
            o,
            r#"<tr class="{sev}"><td class="l">{sev}</td><td class="l">{}</td><td class="l">{} [{}]</td><td class="l">{}</td><td class="l">{}</td><td>{}</td><td>{}</td><td class="l">{}</td><td class="l">{}</td></tr>"#,
            x.kind.name(),
            esc(&x.comm),
            x.tgid,
            esc(x.device.as_deref().unwrap_or("-")),
            esc(&place),
            fmt_ns(x.first_ns.saturating_sub(t0)),
            fmt_ns(x.last_ns.saturating_sub(t0)),
            esc(&x.message),
            esc(&evidence.join(" ")),
            sev = x.severity.name(),
        );
    }
    o.push_str("</table>");
}

/// Colours of the heat map's moves: to the device, to RAM, a CPU fault on a device page.
const TO_DEVICE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const TO_RAM: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const FAULT: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// For the processes with the most moves: address against time, each migration a bar over
/// its range, each fault a dot, coloured by direction.
fn heat_maps(o: &mut String, s: &Summary) {
    let mut tracks: Vec<&super::heat::Track> = s
        .heat
        .tracks
        .iter()
        .filter(|t| !t.points.is_empty())
        .collect();
    if tracks.is_empty() {
        return;
    }
    tracks.sort_by_key(|t| std::cmp::Reverse(t.events));
    o.push_str(
        r#"<h2 id="heat">Address space over time</h2><p>Where each process migrated and faulted pages, and when: <span style="color:#1f77b4">to the device</span>, <span style="color:#ff7f0e">to RAM</span>, <span style="color:#d62728">CPU faults on device pages</span>. The same addresses lit again and again in alternating colours is thrashing.</p>"#,
    );
    let t0 = s.first_ts.min(s.last_ts);
    for t in tracks.into_iter().take(3) {
        let lo = t.points.iter().map(|p| p.start).min().unwrap_or(0);
        let hi = t
            .points
            .iter()
            .map(|p| p.end)
            .max()
            .unwrap_or(1)
            .max(lo + 1);
        let last = t.points.iter().map(|p| p.ts_ns).max().unwrap_or(t0);
        let span = last.saturating_sub(t0).max(1);
        let (unit, div) = time_unit(span);
        let x_max = span as f64 / div;
        let label = format!("address space of {} [{}] over time", t.comm, t.tgid);
        let figure = svg(&label, |root| {
            let mut chart = ChartBuilder::on(root)
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(96)
                .build_cartesian_2d(0f64..x_max * 1.02, lo as f64..hi as f64)?;
            chart
                .configure_mesh()
                .x_labels(8)
                .y_labels(6)
                .x_label_formatter(&|x| format!("{}{unit}", trim(*x)))
                .y_label_formatter(&|y| format!("{:#x}", *y as u64))
                .x_desc("time from the first event")
                .y_desc("address")
                .draw()?;
            let x = |ts: u64| ts.saturating_sub(t0) as f64 / div;
            // Bars a pixel or so wide: about 1/600 of the axis.
            let w = x_max / 600.0;
            let bar = |what: super::heat::Move| {
                t.points
                    .iter()
                    .filter(move |p| p.what == what)
                    .map(move |p| {
                        let c = match what {
                            super::heat::Move::ToDevice => TO_DEVICE,
                            super::heat::Move::ToRam => TO_RAM,
                            super::heat::Move::Fault => FAULT,
                        };
                        Rectangle::new(
                            [(x(p.ts_ns), p.start as f64), (x(p.ts_ns) + w, p.end as f64)],
                            c.filled(),
                        )
                    })
            };
            chart.draw_series(bar(super::heat::Move::ToDevice))?;
            chart.draw_series(bar(super::heat::Move::ToRam))?;
            chart.draw_series(bar(super::heat::Move::Fault))?;
            Ok(())
        });
        let _ = write!(
            o,
            "<figure>{figure}<figcaption>{} [{}]: {} of {} migrations and faults drawn</figcaption></figure>",
            esc(&t.comm),
            t.tgid,
            t.points.len(),
            t.events
        );
    }
}

/// The unit a time axis of `span_ns` reads best in, and ns per unit.
fn time_unit(span_ns: u64) -> (&'static str, f64) {
    match span_ns {
        0..=9_999 => ("ns", 1.0),
        10_000..=9_999_999 => ("us", 1e3),
        10_000_000..=9_999_999_999 => ("ms", 1e6),
        _ => ("s", 1e9),
    }
}

/// A tick value without needless decimals.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A rate as a short count: 950, 12.3k, 4.56M.
fn count(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

/// A summary table's row cells for one class.
fn cells(o: &mut String, class: Class, k: &KindStats, span_ns: u64) {
    let retries = if class == Class::RangeFault {
        k.retries.to_string()
    } else {
        "-".into()
    };
    let _ = write!(
        o,
        "<td>{}</td><td>{:.1}</td><td>{}</td><td>{retries}</td>",
        k.count,
        rate(k.count, span_ns),
        k.pages
    );
    let d = &k.latency;
    match (d.min(), d.mean(), d.stddev()) {
        (Some(min), Some(mean), Some(sd)) => {
            let _ = write!(o, "<td>{}</td>", fmt_ns(min));
            for (_, q) in PERCENTILES {
                let _ = write!(o, "<td>{}</td>", fmt_ns(d.quantile(q).unwrap_or(0)));
            }
            let _ = write!(
                o,
                "<td>{}</td><td>{}</td>",
                fmt_ns(mean.round() as u64),
                fmt_ns(sd.round() as u64)
            );
        }
        _ => o.push_str(&"<td>-</td>".repeat(PERCENTILES.len() + 3)),
    }
}

fn table_head(o: &mut String, first: &[&str]) {
    o.push_str("<table><tr>");
    for f in first {
        let _ = write!(o, r#"<th class="l">{f}</th>"#);
    }
    o.push_str("<th>count</th><th>rate/s</th><th>pages</th><th>retries</th><th>min</th>");
    for (label, _) in PERCENTILES {
        let _ = write!(o, "<th>{label}</th>");
    }
    o.push_str("<th>mean</th><th>stddev</th></tr>");
}

pub fn render(s: &Summary, header: &CaptureHeader, title: &str) -> String {
    let mut o = String::new();
    let timed = s.kinds.values().any(|k| !k.latency.is_empty());
    let _ = write!(
        o,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>hmmtrace report: {t}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f3f3f3}}td.l,th.l{{text-align:left}}tr.error td{{background:#fdd}}tr.warn td{{background:#ffe9c6}}
.lost{{background:#c00;color:#fff;padding:8px;font-weight:bold}}.ok{{color:#070}}section{{margin-top:2em}}figure{{display:inline-block;margin:0 1em 1em 0}}</style>
</head><body><h1>hmmtrace report</h1><p>{t}: {} events over {} of {}.{}</p>"#,
        s.events,
        fmt_ns(s.span_ns()),
        header.clock.describe(),
        if timed {
            format!(
                " Count, pages, min, max and mean are exact; percentiles come from HdrHistogram \
                 histograms of {SIGNIFICANT_DIGITS} significant digits (within {} %). Rates are \
                 per second of that clock.",
                100.0 / 10f64.powi(i32::from(SIGNIFICANT_DIGITS))
            )
        } else {
            " No event has a duration: there are no latencies.".into()
        },
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
    if s.dropped_bytes > 0 {
        let _ = write!(
            o,
            r#"<p class="lost">The capture's last block was incomplete: {} bytes dropped.</p>"#,
            s.dropped_bytes
        );
    }
    let changes = s.plan_change_lines();
    if !changes.is_empty() {
        o.push_str(r#"<h2 id="plan">Attach plan changes</h2><ul>"#);
        for c in changes {
            let _ = write!(o, "<li>{}</li>", esc(&c));
        }
        o.push_str("</ul>");
    }
    if let Some(c) = &s.census {
        o.push_str(&crate::census::render::html(c));
    }
    o.push_str("<h2>Summary</h2>");
    table_head(&mut o, &["kind"]);
    for (class, k) in &s.kinds {
        let _ = write!(o, r#"<tr><td class="l">{}</td>"#, class.name());
        cells(&mut o, *class, k, s.span_ns());
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    if !s.groups.is_empty() {
        let by = format!("{:?}", s.by).to_lowercase();
        let _ = write!(o, r#"<h2 id="groups">By {by}</h2>"#);
        table_head(&mut o, &[&by, "kind"]);
        for (group, kinds) in &s.groups {
            for (class, k) in kinds {
                let _ = write!(
                    o,
                    r#"<tr><td class="l">{}</td><td class="l">{}</td>"#,
                    esc(group),
                    class.name()
                );
                cells(&mut o, *class, k, s.span_ns());
                o.push_str("</tr>");
            }
        }
        o.push_str("</table>");
    }
    // What the run amounted to before the detail of each kind.
    findings_table(&mut o, s);
    devices_table(&mut o, s);
    heat_maps(&mut o, s);
    for (class, k) in &s.kinds {
        let _ = write!(o, r#"<section id="{0}"><h2>{0}</h2>"#, class.name());
        if !k.latency.is_empty() {
            let _ = write!(
                o,
                "<figure>{}<figcaption>{} latency by percentile (log scales)</figcaption></figure>",
                spectrum(&k.latency),
                class.name()
            );
        }
        if let Some(series) = s.series.get(class) {
            let _ = write!(
                o,
                "<figure>{}<figcaption>{} per second</figcaption></figure>",
                rates(series),
                class.name()
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
            r#"<table><tr><th class="l">probe</th><th class="l">symbol</th><th class="l">mechanism</th><th class="l">status</th></tr>"#,
        );
        for p in &header.probe_plan {
            let _ = write!(
                o,
                r#"<tr><td class="l">{}</td><td class="l">{}</td><td class="l">{}</td><td class="l">{}</td></tr>"#,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::GroupBy;

    fn page(scenario: &str, by: GroupBy) -> (Summary, String) {
        let (header, events) = crate::fixtures::scenario(scenario, 1);
        let mut s = Summary::grouped(by, &header, false);
        for e in &events {
            s.add(e);
        }
        let html = render(&s, &header, scenario);
        (s, html)
    }

    #[test]
    fn a_rate_chart_bin_holds_about_ten_events_so_one_event_is_not_a_rate() {
        let one = RateSeries {
            start_ns: 0,
            bin_ns: 1_000_000,
            counts: vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        };
        assert_eq!(chart_bins(&one), (10_000_000, vec![2]), "2 events: one bin");
        let many = RateSeries {
            start_ns: 0,
            bin_ns: 1_000,
            counts: vec![3; 1000],
        };
        let (bin, counts) = chart_bins(&many);
        assert!(counts.len() <= MAX_CHART_BINS && counts.len() * 10 <= 3000);
        assert_eq!(counts.iter().sum::<u64>(), 3000, "nothing lost in merging");
        assert_eq!(bin, 1_000 * 1000u64.div_ceil(MAX_CHART_BINS as u64));
    }

    #[test]
    fn charts_have_time_ticks_and_figures_scaled_units() {
        let (s, html) = page("migrate_fault", GroupBy::Kind);
        // Tick labels on the time axis carry a unit.
        let ticks = html
            .split("</text>")
            .filter(|t| {
                let label = t.rsplit('>').next().unwrap_or("").trim();
                ["ns", "us", "ms", "s"].iter().any(|u| {
                    label
                        .strip_suffix(u)
                        .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok())
                })
            })
            .count();
        assert!(ticks >= 8, "{ticks} time or latency tick labels");
        assert!(html.contains("time from the first event (bins of "));
        // Every duration in the table is in the unit its size needs: 4 significant digits.
        let max = s.kinds[&Class::Migration].latency.max().unwrap();
        assert!(html.contains(&format!("<td>{}</td>", fmt_ns(max))));
        for cell in html.split("<td>").skip(1) {
            let cell = cell.split('<').next().unwrap();
            for unit in ["ns", "us", "ms"] {
                if let Some(n) = cell.strip_suffix(unit).and_then(|n| n.parse::<f64>().ok()) {
                    assert!(n < 1000.0, "{cell}: the next unit up reads better");
                }
            }
        }
        assert!(html.contains("within 0.1 %"));
    }

    #[test]
    fn without_latencies_no_precision_is_claimed_and_text_is_left_aligned() {
        let (header, events) = crate::fixtures::scenario("migrate", 1);
        let mut s = Summary::grouped(GroupBy::Kind, &header, false);
        // Only kinds without durations: a system-migration-only capture.
        for e in events.iter().filter(|e| e.duration_ns.is_none()) {
            s.add(e);
        }
        let html = render(&s, &header, "untimed");
        assert!(
            !html.contains("significant digits"),
            "no percentiles, no precision"
        );
        assert!(html.contains("there are no latencies"));
        assert!(html.contains("td.l,th.l{text-align:left}"));
        assert!(html.contains(r#"<th class="l">kind</th>"#));
    }

    #[test]
    fn by_device_has_a_table_of_devices() {
        let (_, html) = page("multiple_devices", GroupBy::Device);
        assert!(html.contains(r#"<h2 id="groups">By device</h2>"#));
        assert!(html.contains(r#"<td class="l">dmirror0</td>"#));
        assert!(html.contains(r#"<td class="l">dmirror1</td>"#));
    }
}
