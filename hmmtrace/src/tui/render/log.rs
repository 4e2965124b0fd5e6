//! The event log: the newest events that pass the filter, one line each in timestamp order,
//! under a header row, scrollable (↑ ↓ PgUp PgDn Home End), and frozen while paused (space):
//! the panel then shows the log as it was, however many events arrive meanwhile.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::event::{Body, Class};
use crate::report::text::fmt_ns;
use crate::tui::app::{App, LogEntry};
use crate::tui::ui::Ui;

/// One event as a log line (no colours: see [`line`]).
pub fn describe(e: &LogEntry) -> String {
    let ev = &e.event;
    let what = match &ev.body {
        Body::Migration(m) => format!(
            "{}/{} pages {} {}",
            m.migrated,
            m.npages,
            if m.direction == hmmtrace_common::DIRECTION_TO_DEVICE {
                "→ device"
            } else {
                "→ RAM"
            },
            if m.api == hmmtrace_common::API_MIGRATE_DEVICE {
                "(migrate_device)"
            } else {
                ""
            }
        ),
        Body::DeviceFault(f) => format!("migrate_to_ram at {:#x}", f.address),
        Body::PageFree(p) => format!("page_free order {}", p.order),
        Body::Invalidation(i) => format!(
            "{} {:#x}..{:#x}",
            hmmtrace_common::mmu_notify_name(i.event),
            i.start,
            i.end
        ),
        Body::RangeFault(r) => format!(
            "{} pages, {} retries, result {}",
            r.npages, r.retries, r.result
        ),
        Body::SystemMigration(s) => format!("{} ok, {} failed", s.succeeded, s.failed),
        Body::Lost(l) => format!("{} records dropped", l.count),
    };
    // The duration before the free text, so a narrow panel cuts words, not numbers.
    format!(
        "{:<19} {:>8} {}[{}] {}{}",
        ev.class().name(),
        ev.duration_ns.map_or(String::new(), fmt_ns),
        ev.comm,
        ev.pid,
        e.device
            .as_deref()
            .map_or(String::new(), |d| format!("{d} ")),
        what,
    )
}

fn line(e: &LogEntry, t0: u64) -> Line<'static> {
    let t = e.event.ts_ns.saturating_sub(t0);
    let color = match e.event.class() {
        Class::Lost => Color::Red,
        Class::Migration => Color::Cyan,
        Class::DeviceFault => Color::Yellow,
        Class::PageFree => Color::Green,
        Class::Invalidation | Class::IntervalInvalidate => Color::Magenta,
        Class::RangeFault => Color::LightMagenta,
        Class::SystemMigration => Color::Gray,
    };
    Line::from(vec![
        Span::styled(
            format!("{:>12.6}s ", t as f64 / 1e9),
            Style::default().fg(Color::DarkGray),
        ),
        Span::styled(describe(e), Style::default().fg(color)),
    ])
}

pub fn draw<'a>(
    f: &mut Frame,
    area: Rect,
    block: impl Fn(&str) -> Block<'a>,
    app: &App,
    ui: &Ui,
    panel_filter: &str,
) {
    let filter = ui.log_filter(panel_filter);
    let text = ui.log_filter_text(panel_filter);
    let mut title = String::from("events");
    if !text.is_empty() {
        title.push_str(&format!(" matching '{text}'"));
    }
    if ui.paused.is_some() {
        title.push_str(" — PAUSED (space resumes)");
    }
    if ui.scroll > 0 {
        title.push_str(" — scrolled (End: newest)");
    }
    let block = block(&title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    // A header row, then the events.
    let height = inner.height as usize - 1;
    let log = ui.paused.as_ref().unwrap_or(&app.log);
    // Newest first while walking back.
    let t0 = app.first_ts.unwrap_or(0);
    let matching: Vec<&LogEntry> = log.iter().rev().filter(|e| filter.matches(e, t0)).collect();
    ui.max_scroll.set(matching.len().saturating_sub(height));
    let skip = ui.scroll.min(matching.len().saturating_sub(height));
    let mut lines: Vec<&LogEntry> = matching.into_iter().skip(skip).take(height).collect();
    lines.reverse();
    let mut body: Vec<Line> = vec![Line::styled(
        format!(
            "{:>13} {:<19} {:>8} {}",
            "time", "kind", "duration", "process[tid] device what"
        ),
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD),
    )];
    body.extend(if lines.is_empty() {
        vec![Line::styled(
            if app.aggregate.is_some() {
                "counted in the kernel (--aggregate): no single events to show"
            } else {
                "no events match"
            },
            Style::default()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::ITALIC),
        )]
    } else {
        lines.into_iter().map(|e| line(e, t0)).collect()
    });
    f.render_widget(Paragraph::new(body), inner);
}
