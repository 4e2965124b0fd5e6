//! The rates panel: a sparkline per series of events per second of the source's clock, with
//! the last complete bin's rate, the peak and the total; once the source has ended, the average
//! over the whole run (what a report says) in place of the last bin. Narrow panels drop the
//! peak, then the total, before a number is cut.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};
use ratatui::Frame;

use super::fmt_count;
use crate::tui::app::{App, Series};

/// Columns left to the sparkline, at least.
const SPARK_MIN: u16 = 8;

pub fn draw(f: &mut Frame, area: Rect, block: Block, app: &App, series: &[Series]) {
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let shown = &series[..series.len().min(inner.height as usize)];
    let rows = Layout::vertical(shown.iter().map(|_| Constraint::Length(1))).split(inner);
    let ended = app.finished.is_some();
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
            Series::Invalidation | Series::IntervalInvalidate => Color::Magenta,
            Series::RangeFault | Series::Retries => Color::LightMagenta,
            Series::SystemMigration => Color::Gray,
        };
        let now = if ended {
            format!(
                "avg {:>6}/s",
                fmt_count(app.average_rate(*s).round() as u64)
            )
        } else {
            format!("{:>7}/s", fmt_count(app.current_rate(*s).round() as u64))
        };
        let peak = format!(" pk {:>6}", fmt_count(app.peak_rate(*s).round() as u64));
        let sum = format!(" Σ {:>6}", fmt_count(total));
        // As much as fits beside a sparkline of SPARK_MIN columns: name and rate first.
        let room = row.width.saturating_sub(SPARK_MIN) as usize;
        let longest = shown
            .iter()
            .map(|s| s.name().chars().count())
            .max()
            .unwrap_or(0);
        let name_w = if room > longest + now.len() {
            longest
        } else {
            14
        };
        // Cut by characters: names hold arrows.
        let text: String = format!("{:<name_w$}", s.name())
            .chars()
            .take(name_w)
            .collect();
        let mut numbers = now;
        for part in [sum, peak] {
            if name_w + numbers.chars().count() + part.chars().count() < room {
                numbers.push_str(&part);
            }
        }
        // A space before the sparkline keeps the last number a word of its own.
        let label_w = (name_w + 2 + numbers.chars().count()) as u16;
        let [label, spark] = Layout::horizontal([
            Constraint::Length(label_w.min(row.width)),
            Constraint::Fill(1),
        ])
        .areas(*row);
        let line = Line::from(vec![
            Span::styled(text, Style::default().fg(color)),
            Span::raw(format!(" {numbers}")),
        ]);
        f.render_widget(Paragraph::new(line), label);
        // The newest bins, right-aligned, one column each.
        let n = spark.width as usize;
        let data: Vec<u64> = rate.bins.iter().rev().take(n).rev().copied().collect();
        f.render_widget(
            Sparkline::default()
                .data(&data)
                .style(Style::default().fg(color)),
            spark,
        );
    }
}
