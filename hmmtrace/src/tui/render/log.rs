//! The event log: the newest events that pass the filter, one line each, scrollable (↑ ↓),
//! and frozen while paused (space).

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::event::Body;
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
            "{} {:#x}..{:#x}{}",
            hmmtrace_common::mmu_notify_name(i.event),
            i.start,
            i.end,
            if i.path == hmmtrace_common::INVALIDATE_CALLBACK {
                " (callback)"
            } else {
                ""
            }
        ),
        Body::RangeFault(r) => format!(
            "{} pages, {} retries, result {}",
            r.npages, r.retries, r.result
        ),
        Body::SystemMigration(s) => format!("{} ok, {} failed", s.succeeded, s.failed),
        Body::Lost(l) => format!("{} records dropped", l.count),
    };
    format!(
        "{:<13} {}[{}] {}{}{}",
        ev.kind().name(),
        ev.comm,
        ev.pid,
        e.device
            .as_deref()
            .map_or(String::new(), |d| format!("{d} ")),
        what,
        ev.duration_ns
            .map_or(String::new(), |d| format!("  {}", fmt_ns(d)))
    )
}

fn line(e: &LogEntry, t0: u64) -> Line<'static> {
    let t = e.event.ts_ns.saturating_sub(t0);
    let color = match e.event.kind() {
        crate::event::EventKind::Lost => Color::Red,
        crate::event::EventKind::Migration => Color::Cyan,
        crate::event::EventKind::DeviceFault => Color::Yellow,
        crate::event::EventKind::PageFree => Color::Green,
        crate::event::EventKind::Invalidation => Color::Magenta,
        crate::event::EventKind::RangeFault => Color::LightMagenta,
        crate::event::EventKind::SystemMigration => Color::Gray,
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
    if ui.paused_at.is_some() {
        title.push_str(" — PAUSED (space resumes)");
    }
    if ui.scroll > 0 {
        title.push_str(" — scrolled (End: newest)");
    }
    let block = block(&title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let height = inner.height as usize;
    // Newest first while walking back; at most scroll + height matches are needed.
    let limit = ui.paused_at.unwrap_or(u64::MAX);
    let mut lines: Vec<&LogEntry> = app
        .log
        .iter()
        .rev()
        .filter(|e| e.seq <= limit && filter.matches(e))
        .take(ui.scroll.saturating_add(height))
        .collect();
    let skip = ui.scroll.min(lines.len().saturating_sub(height));
    lines.drain(..skip.min(lines.len()));
    lines.truncate(height);
    lines.reverse();
    let t0 = app.first_ts.unwrap_or(0);
    let body: Vec<Line> = if lines.is_empty() {
        vec![Line::styled(
            "no events match",
            Style::default()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::ITALIC),
        )]
    } else {
        lines.into_iter().map(|e| line(e, t0)).collect()
    };
    f.render_widget(Paragraph::new(body), inner);
}
