//! The top table: events by process, device (pgmap owner) or kernel symbol, sorted by the
//! viewer's choice (`s`), with per-kind counts, pages, total time and the slowest event;
//! a narrow panel leaves out whole columns rather than cutting numbers.

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

/// A column: heading, width, and the cell of a row.
type Column = (&'static str, u16, Box<dyn Fn(&TopRow) -> String>);

/// The name column's bounds.
const NAME_MIN: u16 = 8;
const NAME_MAX: u16 = 24;

/// The columns' reading order.
const ORDER: [&str; 9] = [
    "events", "migr", "fault", "free", "inval", "rfault", "pages", "time", "max",
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
    let mut title = format!(
        "top by {} (t), sorted by {} (s)",
        table.name(),
        ui.top_sort.name()
    );
    if title.chars().count() + 4 > area.width as usize {
        title = format!("top: {} (t) by {} (s)", table.name(), ui.top_sort.name());
    }
    // Columns in the order they are kept when the panel narrows: a column that does not fit
    // whole is left out, never cut (numbers are at most 6 or 8 characters wide).
    let mut columns: Vec<Column> = vec![
        ("events", 6, Box::new(|r: &TopRow| fmt_count(r.events))),
        ("max", 8, Box::new(|r: &TopRow| fmt_ns(r.max_ns))),
        ("pages", 6, Box::new(|r: &TopRow| fmt_count(r.pages))),
        ("time", 8, Box::new(|r: &TopRow| fmt_ns(r.time_ns))),
    ];
    for (class, heading) in KINDS {
        columns.push((
            heading,
            6,
            Box::new(move |r: &TopRow| fmt_count(r.by_class[class.index()])),
        ));
    }
    let inner = area.width.saturating_sub(2);
    let rows = sorted(top, ui.top_sort);
    // The name column keeps its longest name, within bounds, before any number column.
    let name_w = rows
        .iter()
        .map(|(n, _)| n.chars().count() as u16)
        .max()
        .unwrap_or(0)
        .clamp(NAME_MIN, NAME_MAX);
    let mut used = name_w;
    columns.retain(|(_, w, _)| {
        let fits = used + 1 + w <= inner;
        if fits {
            used += 1 + w;
        }
        fits
    });
    // Shown in reading order: counts, pages, then times.
    columns.sort_by_key(|(h, ..)| ORDER.iter().position(|o| o == h));
    let rows = rows.into_iter().map(|(name, r)| {
        let mut cells = vec![name.to_string()];
        cells.extend(columns.iter().map(|(_, _, cell)| cell(r)));
        Row::new(cells)
    });
    let mut names = vec!["name"];
    names.extend(columns.iter().map(|(h, ..)| *h));
    let header = Row::new(names).style(
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD),
    );
    let mut widths = vec![Constraint::Min(name_w)];
    widths.extend(columns.iter().map(|(_, w, _)| Constraint::Length(*w)));
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .block(block(&title)),
        area,
    );
}
