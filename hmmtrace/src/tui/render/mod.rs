//! Drawing: one module per widget. Every function here only reads [`App`] and [`Ui`]; the
//! layout comes from the dashboard.

pub(crate) mod findings;
mod footer;
mod help;
mod latency;
pub(crate) mod log;
mod rates;
mod status;
mod top;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::app::App;
use super::dashboard::PanelKind;
use super::layout::Grid;
use super::ui::Ui;

/// Draws the whole screen: title, the dashboard's rows of panels, footer, help on top.
pub fn draw(f: &mut Frame, app: &App, ui: &Ui) {
    let [title, body, footer_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(title_line(app, ui), title);
    let rows = match ui.grid(body) {
        Grid::Fits(rows) => rows,
        Grid::TooSmall { need: (w, h) } => {
            // Solving a layout nobody could read is how a big dashboard once hung the TUI.
            f.render_widget(
                Paragraph::new(format!(
                    "terminal too small for this dashboard: it needs {w}×{} ({} rows of panels,                      up to {} in a row), this one is {}×{}. Enlarge it or pick a smaller                      dashboard (--dashboard). q quits.",
                    h + 2,
                    ui.dashboard.rows.len(),
                    ui.dashboard.rows.iter().map(|r| r.panels.len()).max().unwrap_or(0),
                    f.area().width,
                    f.area().height
                ))
                .wrap(ratatui::widgets::Wrap { trim: true }),
                body,
            );
            Vec::new()
        }
    };
    for (row, areas) in ui.dashboard.rows.iter().zip(rows.iter()) {
        for (panel, area) in row.panels.iter().zip(areas.iter()) {
            let block = |default: &str| {
                Block::bordered().title(Span::styled(
                    format!(" {} ", panel.title.as_deref().unwrap_or(default)),
                    Style::default().add_modifier(Modifier::BOLD),
                ))
            };
            match &panel.kind {
                PanelKind::Rates { series } => {
                    let default = match app.source.clock {
                        Some(c) => format!("events per second of {}", c.short()),
                        None => "events per second".into(),
                    };
                    rates::draw(f, *area, block(&default), app, series)
                }
                PanelKind::Latency { kinds } => latency::draw(f, *area, block, app, ui, kinds),
                PanelKind::Top { table } => top::draw(f, *area, block, app, ui, *table),
                PanelKind::Log { filter } => log::draw(f, *area, block, app, ui, filter),
                PanelKind::Status => status::draw(f, *area, block("status"), app, ui),
                PanelKind::Findings => {
                    findings::draw(f, *area, block("findings and device pages"), app, ui)
                }
            }
        }
    }
    footer::draw(f, footer_area, app, ui);
    if ui.help {
        help::draw(f, f.area(), ui);
    }
}

/// Draws one frame of `app` and `ui` on an off-screen terminal of `width`×`height` and
/// returns its text, a line per row (for tests and the dashboard fuzz target).
pub fn draw_offscreen(app: &App, ui: &Ui, width: u16, height: u16) -> String {
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height))
        .expect("an off-screen terminal cannot fail to start");
    t.draw(|f| draw(f, app, ui))
        .expect("drawing off screen cannot fail");
    let buf = t.backend().buffer();
    let mut out = String::with_capacity(usize::from(width + 1) * usize::from(height));
    for y in 0..height {
        for x in 0..width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn title_line<'a>(app: &'a App, ui: &'a Ui) -> Paragraph<'a> {
    let mut spans = vec![
        Span::styled(
            " hmmtrace ",
            Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(" {} ", app.source.title)),
        Span::styled(
            format!("[{}] ", ui.dashboard.name),
            Style::default().fg(Color::DarkGray),
        ),
        Span::raw(format!("{} events", app.events)),
    ];
    let lost = app.total_lost();
    if lost > 0 {
        spans.push(Span::styled(
            format!("  LOST {lost} "),
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ));
    }
    if ui.is_paused() {
        spans.push(Span::styled(
            "  PAUSED ",
            Style::default()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(why) = &app.finished {
        spans.push(Span::styled(
            format!("  ended: {why}"),
            Style::default().fg(Color::Yellow),
        ));
    }
    Paragraph::new(Line::from(spans))
}

/// A rectangle of `w` × `h` centred in `area` (clipped to it).
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Compact counts: 1234 → "1234", 12345 → "12.3k", 1234567 → "1.23M".
fn fmt_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests;
