//! The latency panel: per kind, the distribution on a log time axis (100 ns to 1 s) with p50,
//! p99, p99.9 and max marked under it, for the rolling window or since start (`w`). When three
//! lines per kind do not fit, each kind gets one line of numbers, so that every kind shows.
//! Count and max are exact; percentiles carry their histogram's precision.

use hdrhistogram::Histogram;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};
use ratatui::Frame;

use crate::event::Class;
use crate::report::text::fmt_ns;
use crate::tui::app::{App, LatencyView, WINDOW_BINS};
use crate::tui::ui::Ui;

/// The axis: decades from 10^LO ns to 10^HI ns.
const LO: f64 = 2.0;
const HI: f64 = 9.0;

/// Markers drawn under the distribution: (mark, label, quantile, colour). The stats line
/// puts each mark before its number, so the marks read without colour.
pub const MARKS: [(char, &str, f64, Color); 4] = [
    ('M', "p50", 0.5, Color::Green),
    ('9', "p99", 0.99, Color::Yellow),
    ('3', "p99.9", 0.999, Color::LightRed),
    ('X', "max", 1.0, Color::Magenta),
];

/// The column (of `width`) where `ns` falls on the log axis.
pub fn column(ns: u64, width: u16) -> u16 {
    let x = ((ns.max(1) as f64).log10() - LO) / (HI - LO);
    ((x * width as f64).floor().max(0.0) as u16).min(width.saturating_sub(1))
}

/// Counts per column of the log axis.
pub fn buckets(h: &Histogram<u64>, width: u16) -> Vec<u64> {
    let mut out = vec![0u64; width as usize];
    for v in h.iter_recorded() {
        let c = column(v.value_iterated_to(), width) as usize;
        out[c] += v.count_since_last_iteration();
    }
    out
}

pub fn draw<'a>(
    f: &mut Frame,
    area: Rect,
    block: impl Fn(&str) -> Block<'a>,
    app: &App,
    ui: &Ui,
    kinds: &[Class],
) {
    let title = if ui.since_start {
        "latency since start (w: rolling window)".to_string()
    } else {
        format!(
            "latency, last {} (w: since start)",
            fmt_ns(WINDOW_BINS as u64 * app.bin_ns)
        )
    };
    let block = block(&title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height == 0 || inner.width < 20 {
        return;
    }
    // Three lines per kind (numbers, distribution, markers) and an axis line when they all
    // fit; else one line of numbers per kind.
    // The label column holds the longest name shown.
    let label = kinds.iter().map(|k| k.name().len()).max().unwrap_or(0) as u16 + 1;
    let full = inner.height as usize > kinds.len() * 3 && inner.width > label + 4;
    let per = if full { 3u16 } else { 1 };
    let fit = if full {
        kinds.len()
    } else {
        inner.height as usize
    };
    let plot_w = inner.width.saturating_sub(label);
    for (i, kind) in kinds.iter().take(fit).enumerate() {
        let l = &app.latency[kind];
        let h = if ui.since_start {
            l.since_start()
        } else {
            l.window()
        };
        let y = inner.y + i as u16 * per;
        f.render_widget(
            Paragraph::new(stats(*kind, &h, label, inner.width)),
            Rect::new(inner.x, y, inner.width, 1),
        );
        if !full {
            continue;
        }
        let plot = Rect::new(inner.x + label, y + 1, plot_w, 1);
        f.render_widget(
            Sparkline::default()
                .data(buckets(h.histogram, plot_w))
                .style(Style::default().fg(Color::Cyan)),
            plot,
        );
        if !h.is_empty() {
            let mut marks = vec![Span::raw(" "); plot_w as usize];
            // Later marks win a shared column: max, then p99.9, show where they coincide.
            for (mark, _, q, color) in MARKS {
                let c = column(h.quantile(q), plot_w) as usize;
                marks[c] = Span::styled(mark.to_string(), Style::default().fg(color));
            }
            f.render_widget(
                Paragraph::new(Line::from(marks)),
                Rect::new(inner.x + label, y + 2, plot_w, 1),
            );
        }
    }
    if !full {
        return;
    }
    // The axis: a label at each decade that fits with a space on each side.
    let axis_y = inner.y + inner.height - 1;
    let mut axis = vec![' '; plot_w as usize];
    for (d, label) in [
        "100ns", "1us", "10us", "100us", "1ms", "10ms", "100ms", "1s",
    ]
    .iter()
    .enumerate()
    {
        let c = column(10f64.powi(2 + d as i32) as u64, plot_w) as usize;
        let (from, to) = (c.saturating_sub(1), (c + label.len() + 1).min(axis.len()));
        if c + label.len() <= axis.len() && axis[from..to].iter().all(|&x| x == ' ') {
            for (j, ch) in label.chars().enumerate() {
                axis[c + j] = ch;
            }
        }
    }
    f.render_widget(
        Paragraph::new(Line::styled(
            axis.into_iter().collect::<String>(),
            Style::default().fg(Color::DarkGray),
        )),
        Rect::new(inner.x + label, axis_y, plot_w, 1),
    );
}

/// The numbers line of one kind: as many marks as fit, each whole.
fn stats<'a>(kind: Class, h: &LatencyView, label: u16, width: u16) -> Line<'a> {
    let label = label as usize;
    let name = Span::styled(
        format!("{:<label$}", kind.name()),
        Style::default().add_modifier(Modifier::BOLD),
    );
    if h.is_empty() {
        return Line::from(vec![
            name,
            Span::styled("no events", Style::default().fg(Color::DarkGray)),
        ]);
    }
    let n = format!("n={} ", h.count);
    let mut used = label + n.len();
    let mut spans = vec![name, Span::raw(n)];
    for (mark, label, q, color) in MARKS {
        let text = format!("{mark}:{label} {} ", fmt_ns(h.quantile(q)));
        if used + text.len() > width as usize {
            break;
        }
        used += text.len();
        spans.push(Span::styled(text, Style::default().fg(color)));
    }
    Line::from(spans)
}
