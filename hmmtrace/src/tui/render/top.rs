//! The top table: events by process, device (pgmap owner) or kernel symbol, sorted by the
//! viewer's choice (`s`), with per-kind counts, pages, total time and the slowest event.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Row, Table};
use ratatui::Frame;

use super::fmt_count;
use crate::event::Class;
use crate::report::text::fmt_ns;
use crate::tui::app::{App, Top, TopRow};
use crate::tui::dashboard::TopTable;
use crate::tui::ui::{TopSort, Ui};

/// Rows of `top`, sorted by `sort` (descending, then by name), "other" last if used.
pub fn sorted(top: &Top, sort: TopSort) -> Vec<(&str, &TopRow)> {
    let key = |r: &TopRow| match sort {
        TopSort::Events => r.events,
        TopSort::Pages => r.pages,
        TopSort::Time => r.time_ns,
        TopSort::Max => r.max_ns,
    };
    let mut rows: Vec<(&str, &TopRow)> = top.rows.iter().map(|(k, v)| (k.as_str(), v)).collect();
    rows.sort_by(|a, b| key(b.1).cmp(&key(a.1)).then(a.0.cmp(b.0)));
    if top.other.events > 0 {
        rows.push(("(other)", &top.other));
    }
    rows
}

/// The per-class columns of a wide table, with their headings.
const KINDS: [(Class, &str); 5] = [
    (Class::Migration, "migr"),
    (Class::DeviceFault, "fault"),
    (Class::PageFree, "free"),
    (Class::Invalidation, "inval"),
    (Class::RangeFault, "rfault"),
];

pub fn draw<'a>(
    f: &mut Frame,
    area: Rect,
    block: impl Fn(&str) -> Block<'a>,
    app: &App,
    ui: &Ui,
    panel_table: TopTable,
) {
    let table = ui.top_table.unwrap_or(panel_table);
    let top = match table {
        TopTable::Process => &app.by_process,
        TopTable::Device => &app.by_device,
        TopTable::Symbol => &app.by_symbol,
    };
    let title = format!(
        "top by {} (t), sorted by {} (s)",
        table.name(),
        ui.top_sort.name()
    );
    // Narrow panels keep the name, totals and the slowest event; wide ones show every kind.
    let wide = area.width >= 84;
    let rows = sorted(top, ui.top_sort).into_iter().map(|(name, r)| {
        let mut cells = vec![name.to_string(), fmt_count(r.events)];
        if wide {
            for (class, _) in KINDS {
                cells.push(fmt_count(r.by_class[class.index()]));
            }
        }
        cells.extend([fmt_count(r.pages), fmt_ns(r.time_ns), fmt_ns(r.max_ns)]);
        Row::new(cells)
    });
    let mut names = vec!["name", "events"];
    if wide {
        names.extend(KINDS.map(|(_, h)| h));
    }
    names.extend(["pages", "time", "max"]);
    let header = Row::new(names).style(
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD),
    );
    let mut widths = vec![Constraint::Min(12), Constraint::Length(6)];
    if wide {
        widths.extend([Constraint::Length(6); 5]);
    }
    widths.extend([
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(8),
    ]);
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .block(block(&title)),
        area,
    );
}
