//! The help overlay (`?`): every key, and the filter syntax.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::centered;
use crate::tui::ui::Ui;

pub const KEYS: [(&str, &str); 14] = [
    ("q, Ctrl-C", "quit"),
    ("?", "this help (any key closes it)"),
    ("/", "filter the event log (Enter applies, Esc cancels)"),
    ("space", "pause the log (replay: pause the replay)"),
    ("↑ ↓ PgUp PgDn", "scroll the log"),
    ("Home End", "oldest kept / newest events"),
    ("w", "latency: rolling window ↔ since start"),
    ("t", "top table: process → device → symbol"),
    ("s", "top table sort: events → pages → time → max"),
    (
        "f",
        "next finding: the log shows its events (after the last: all)",
    ),
    ("+ -", "replay speed ×2 / ÷2"),
    ("← →", "replay: seek 10 s back / forward"),
    ("Esc", "dismiss a filter error"),
    (
        "filter",
        "kind:migration pid:42 comm:NAME dev:NAME t:0.5..1.5 addr:0x1000..0x2000 text",
    ),
];

pub fn draw(f: &mut Frame, area: Rect, ui: &Ui) {
    let mut lines: Vec<Line> = vec![
        Line::styled(
            format!(
                "dashboard '{}': {}",
                ui.dashboard.name, ui.dashboard.description
            ),
            Style::default().add_modifier(Modifier::ITALIC),
        ),
        Line::raw(""),
    ];
    for (k, what) in KEYS {
        lines.push(Line::raw(format!("{k:>14}  {what}")));
    }
    let popup = centered(area, 76, lines.len() as u16 + 2);
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" help ")),
        popup,
    );
}
