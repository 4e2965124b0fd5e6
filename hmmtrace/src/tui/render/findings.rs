//! The findings panel: what the detectors concluded so far, worst and newest first, each on one
//! line (severity, kind, process, where, the sentence); the selected one (`f`) highlighted, its
//! events shown in the log. Above them, one line per device: its pages in, back, freed, held,
//! and how long pages lived on it.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::findings::{Finding, Severity};
use crate::report::text::fmt_ns;
use crate::tui::app::App;
use crate::tui::ui::Ui;

fn color(s: Severity) -> Color {
    match s {
        Severity::Info => Color::Gray,
        Severity::Warn => Color::Yellow,
        Severity::Error => Color::Red,
    }
}

/// The findings in the order the panel lists them (and `f` walks): worst first, then newest.
pub fn order(app: &App) -> Vec<usize> {
    let kept = &app.findings.kept;
    let mut idx: Vec<usize> = (0..kept.len()).collect();
    idx.sort_by_key(|&i| (std::cmp::Reverse(kept[i].severity), std::cmp::Reverse(i)));
    idx
}

fn describe(f: &Finding) -> String {
    let mut s = format!("{} [{}]", f.comm, f.tgid);
    if let Some(d) = &f.device {
        s.push(' ');
        s.push_str(d);
    }
    s.push_str(": ");
    s.push_str(&f.message);
    s
}

pub fn draw(f: &mut Frame, area: Rect, block: Block, app: &App, ui: &Ui) {
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let mut lines: Vec<Line> = Vec::new();
    let mut names = app.device_names();
    let width = inner.width as usize;
    for (owner, d) in &app.device_pages.devices {
        // Parts in order of importance; those that do not fit whole are left out.
        let mut text = format!("{}:", names.name(*owner).unwrap_or("?"));
        let l = &d.lifetime;
        let mut parts = vec![
            format!(" held {}", d.held()),
            format!(" in {}", d.to_device),
            format!(" back {}", d.back),
            format!(" freed {}", d.freed),
            format!(" evicted {}", d.evicted),
        ];
        if let (Some(p50), Some(p99)) = (l.quantile(0.5), l.quantile(0.99)) {
            parts.insert(2, format!(" lived p50 {} p99 {}", fmt_ns(p50), fmt_ns(p99)));
        }
        for p in parts {
            if text.chars().count() + p.chars().count() <= width {
                text.push_str(&p);
            }
        }
        lines.push(Line::styled(text, Style::default().fg(Color::Cyan)));
    }
    let found = &app.findings;
    if !found.checked && found.is_empty() {
        lines.push(Line::styled(
            "the detectors are not running on this source",
            Style::default().fg(Color::DarkGray),
        ));
    } else if found.is_empty() {
        lines.push(Line::styled(
            "no findings: no thrashing, retry storm, slow callback or contract break seen",
            Style::default().fg(Color::Green),
        ));
    } else {
        lines.push(Line::styled(
            format!("{} — f: show one's events in the log", found.summary()),
            Style::default().add_modifier(Modifier::BOLD),
        ));
        for i in order(app) {
            let x = &found.kept[i];
            let selected = ui.finding == Some(i);
            let mut style = Style::default();
            if selected {
                style = style.add_modifier(Modifier::REVERSED);
            }
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{:<5} ", x.severity.name().to_uppercase()),
                    style.fg(color(x.severity)).add_modifier(Modifier::BOLD),
                ),
                Span::styled(format!("{} ", x.kind.name()), style.fg(color(x.severity))),
                Span::styled(describe(x), style),
            ]));
        }
    }
    f.render_widget(Paragraph::new(lines), inner);
}
