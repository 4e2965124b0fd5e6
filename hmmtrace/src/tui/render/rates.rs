//! The rates panel: a sparkline per series of events per second, with the last complete
//! second's count, the peak and the total.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};
use ratatui::Frame;

use super::fmt_count;
use crate::tui::app::{App, Series};

const LABEL: u16 = 50;

pub fn draw(f: &mut Frame, area: Rect, block: Block, app: &App, series: &[Series]) {
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let shown = &series[..series.len().min(inner.height as usize)];
    let rows = Layout::vertical(shown.iter().map(|_| Constraint::Length(1))).split(inner);
    for (s, row) in shown.iter().zip(rows.iter()) {
        let rate = &app.rates[s];
        let total = rate.total;
        let color = match s {
            Series::Lost if total > 0 => Color::Red,
            Series::Lost => Color::DarkGray,
            Series::ToDevice => Color::Cyan,
            Series::ToRam => Color::LightBlue,
            Series::DeviceFault => Color::Yellow,
            Series::PageFree => Color::Green,
            Series::Invalidation => Color::Magenta,
            Series::RangeFault => Color::LightMagenta,
            Series::SystemMigration => Color::Gray,
        };
        let [label, spark] = Layout::horizontal([
            Constraint::Length(LABEL.min(row.width)),
            Constraint::Fill(1),
        ])
        .areas(*row);
        let text = Line::from(vec![
            Span::styled(format!("{:<18}", s.name()), Style::default().fg(color)),
            Span::raw(format!(
                "{:>7}/s pk {:>7} Σ {:>7}",
                fmt_count(rate.current()),
                fmt_count(rate.peak.max(rate.current())),
                fmt_count(total)
            )),
        ]);
        f.render_widget(Paragraph::new(text), label);
        // The newest seconds, right-aligned, one column each.
        let n = spark.width as usize;
        let data: Vec<u64> = rate.seconds.iter().rev().take(n).rev().copied().collect();
        f.render_widget(
            Sparkline::default()
                .data(&data)
                .style(Style::default().fg(color)),
            spark,
        );
    }
}
