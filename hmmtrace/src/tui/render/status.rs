//! The status panel: the source, lost events (red when any), each probe's state from the
//! attach plan, each eBPF program's own cost (run_time_ns / run_cnt), and the programs' last
//! diagnostics (`--ebpf-log`).

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use crate::probe::PlanEntry;
use crate::report::text::fmt_ns;
use crate::tui::app::App;
use crate::tui::ui::Ui;

pub fn draw(f: &mut Frame, area: Rect, block: Block, app: &App, ui: &Ui) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let dim = Style::default().fg(Color::DarkGray);
    let mut lines = vec![Line::from(vec![
        Span::styled("source ", bold),
        Span::raw(app.source.title.clone()),
    ])];
    if let Some(r) = &app.replay {
        let speed = ui.replay.as_ref().map_or(r.speed, |c| c.speed());
        let length = r.length_ns.map_or_else(|| "?".into(), fmt_ns);
        let at_end = r.length_ns.is_some_and(|l| r.position_ns >= l) && app.finished.is_none();
        lines.push(Line::from(vec![
            Span::styled("replay ", bold),
            Span::raw(format!(
                "{} / {length} at {speed}×{}{}",
                fmt_ns(r.position_ns),
                if r.paused { " PAUSED" } else { "" },
                if at_end {
                    " — at the end (← seeks back)"
                } else {
                    ""
                }
            )),
        ]));
    }
    let lost = app.total_lost();
    if lost > 0 {
        let per: Vec<String> = app.lost.iter().map(|(p, n)| format!("{p} {n}")).collect();
        lines.push(Line::from(Span::styled(
            format!("LOST {lost} events (ring buffer full): {}", per.join(", ")),
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        )));
    } else {
        lines.push(Line::from(vec![
            Span::styled("lost ", bold),
            Span::styled("0", Style::default().fg(Color::Green)),
        ]));
    }
    if app.malformed > 0 {
        lines.push(Line::styled(
            format!("{} ring records did not decode", app.malformed),
            Style::default().fg(Color::Red),
        ));
    }
    if let Some(n) = &app.notice {
        lines.push(Line::styled(n.clone(), dim));
    }
    if app.source.probes.is_empty() {
        lines.push(Line::styled(
            "probes: none (the reference engine produces the events)",
            dim,
        ));
    } else {
        lines.push(Line::styled("probes (attached / planned)", bold));
        for (probe, rows) in by_probe(&app.source.probes) {
            let attached = rows.iter().filter(|p| p.status.is_attached()).count();
            let mut mech: Vec<String> = rows
                .iter()
                .filter_map(|p| p.status.attached())
                .map(|m| m.to_string())
                .collect();
            let (text, color) = if attached == 0 {
                // Why not: the first row's reason says it for the probe.
                (format!("none: {}", rows[0].status), Color::Red)
            } else {
                mech.sort_unstable();
                mech.dedup();
                (
                    format!("{attached}/{} via {}", rows.len(), mech.join(", ")),
                    Color::Green,
                )
            };
            lines.push(Line::from(vec![
                Span::raw(format!(" {probe:<17}")),
                Span::styled(text, Style::default().fg(color)),
            ]));
        }
        // Drivers' callbacks live in modules that come and go: say which, and how they were
        // found when not from the table.
        for p in app.source.probes.iter().filter(|p| !p.module.is_empty()) {
            let how = if p.found.is_table() {
                String::new()
            } else {
                format!(", {}", p.found)
            };
            lines.push(Line::styled(
                format!(" {} [{}] {}{how}", p.symbol, p.module, p.status),
                dim,
            ));
        }
    }
    if !app.costs.is_empty() {
        lines.push(Line::styled(
            "eBPF program cost (run_time_ns / run_cnt)",
            bold,
        ));
        for c in &app.costs {
            let avg = c
                .run_time_ns
                .checked_div(c.run_cnt)
                .map_or_else(|| "-".into(), fmt_ns);
            lines.push(Line::raw(format!(
                " {:<28} {:>9} runs {:>8} each",
                c.name, c.run_cnt, avg
            )));
        }
    }
    if !app.diagnostics.is_empty() {
        lines.push(Line::styled("eBPF diagnostics (newest last)", bold));
        for d in &app.diagnostics {
            lines.push(Line::raw(format!(
                " [{}] {}: {}",
                d.probe, d.level, d.message
            )));
        }
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        area,
    );
}

/// The plan's rows grouped by logical probe, in plan order.
fn by_probe(plan: &[PlanEntry]) -> Vec<(&'static str, Vec<&PlanEntry>)> {
    let mut out: Vec<(&'static str, Vec<&PlanEntry>)> = Vec::new();
    for p in plan {
        let name = p.probe().name();
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, rows)) => rows.push(p),
            None => out.push((name, vec![p])),
        }
    }
    out
}
