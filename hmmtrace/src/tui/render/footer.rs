//! The footer: the filter being typed, a refused filter's reason, or the main keys.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::ui::Ui;

pub fn draw(f: &mut Frame, area: Rect, _app: &App, ui: &Ui) {
    let key = Style::default().fg(Color::Black).bg(Color::Gray);
    let line = if let Some(text) = &ui.editing {
        Line::from(vec![
            Span::styled(" filter ", key),
            Span::raw(format!(" /{text}▏")),
            Span::styled(
                "  Enter applies, Esc cancels",
                Style::default().fg(Color::DarkGray),
            ),
        ])
    } else if let Some(err) = &ui.filter_error {
        Line::styled(
            format!(" bad filter: {err} (Esc)"),
            Style::default().fg(Color::Red),
        )
    } else {
        let mut keys = vec![
            ("q", "quit"),
            ("?", "help"),
            ("/", "filter"),
            ("space", "pause"),
            ("w", "window"),
            ("t", "table"),
            ("s", "sort"),
        ];
        if ui.replay.is_some() {
            keys.extend([("+/-", "speed"), ("←/→", "seek")]);
        }
        let mut spans = Vec::new();
        for (k, what) in keys {
            spans.push(Span::styled(format!(" {k} "), key));
            spans.push(Span::raw(format!(" {what} ")));
        }
        Line::from(spans)
    };
    f.render_widget(Paragraph::new(line), area);
}
