//! The latency panel: per kind, the distribution on a log time axis (100 ns to 1 s) with p50,
//! p99, p99.9 and max marked under it, for the rolling window or since start (`w`).

use hdrhistogram::Histogram;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};
use ratatui::Frame;

use crate::event::EventKind;
use crate::report::text::fmt_ns;
use crate::tui::app::{App, WINDOW_SECS};
use crate::tui::ui::Ui;

/// The axis: decades from 10^LO ns to 10^HI ns.
const LO: f64 = 2.0;
const HI: f64 = 9.0;
const LABEL: u16 = 14;

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
    kinds: &[EventKind],
) {
    let title = if ui.since_start {
        "latency since start (w: rolling window)".to_string()
    } else {
        format!("latency, last {WINDOW_SECS} s (w: since start)")
    };
    let block = block(&title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height < 2 || inner.width <= LABEL + 4 {
        return;
    }
    let plot_w = inner.width - LABEL;
    // Three lines per kind: numbers, distribution, markers; an axis line at the bottom.
    let per = 3u16;
    let fit = ((inner.height - 1) / per) as usize;
    for (i, kind) in kinds.iter().take(fit).enumerate() {
        let l = &app.latency[kind];
        let h = if ui.since_start {
            &l.since_start
        } else {
            &l.window
        };
        let y = inner.y + i as u16 * per;
        let stats = if h.is_empty() {
            Line::from(vec![
                Span::styled(
                    format!("{:<14}", kind.name()),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::styled("no events", Style::default().fg(Color::DarkGray)),
            ])
        } else {
            let mut spans = vec![
                Span::styled(
                    format!("{:<14}", kind.name()),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!("n={} ", h.len())),
            ];
            for (mark, label, q, color) in MARKS {
                spans.push(Span::styled(
                    format!("{mark}:{label} {} ", fmt_ns(h.value_at_quantile(q))),
                    Style::default().fg(color),
                ));
            }
            Line::from(spans)
        };
        f.render_widget(Paragraph::new(stats), Rect::new(inner.x, y, inner.width, 1));
        let plot = Rect::new(inner.x + LABEL, y + 1, plot_w, 1);
        f.render_widget(
            Sparkline::default()
                .data(buckets(h, plot_w))
                .style(Style::default().fg(Color::Cyan)),
            plot,
        );
        if !h.is_empty() {
            let mut marks = vec![Span::raw(" "); plot_w as usize];
            // Later marks win a shared column: max, then p99.9, show where they coincide.
            for (mark, _, q, color) in MARKS {
                let c = column(h.value_at_quantile(q), plot_w) as usize;
                marks[c] = Span::styled(mark.to_string(), Style::default().fg(color));
            }
            f.render_widget(
                Paragraph::new(Line::from(marks)),
                Rect::new(inner.x + LABEL, y + 2, plot_w, 1),
            );
        }
    }
    // The axis: a label at each decade that fits.
    let axis_y = inner.y + inner.height - 1;
    let mut axis = vec![' '; plot_w as usize];
    for (d, label) in [
        "100ns", "1us", "10us", "100us", "1ms", "10ms", "100ms", "1s",
    ]
    .iter()
    .enumerate()
    {
        let c = column(10f64.powi(2 + d as i32) as u64, plot_w) as usize;
        if c + label.len() <= axis.len() && axis[c..c + label.len()].iter().all(|&x| x == ' ') {
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
        Rect::new(inner.x + LABEL, axis_y, plot_w, 1),
    );
}
