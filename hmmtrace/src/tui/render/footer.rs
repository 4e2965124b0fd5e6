//! The footer: the filter being typed (with its cursor), a refused filter's reason, or the
//! main keys.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::ui::Ui;

pub fn draw(f: &mut Frame, area: Rect, _app: &App, ui: &Ui) {
    let key = Style::default().fg(Color::Black).bg(Color::Gray);
    let line = if let Some(input) = &ui.editing {
        // The character under the cursor is shown reversed (a space at the end of the line).
        let text: Vec<char> = input.value().chars().collect();
        let at = input.cursor().min(text.len());
        let before: String = text[..at].iter().collect();
        let under = text.get(at).map_or(" ".to_string(), |c| c.to_string());
        let after: String = text
            .get(at + 1..)
            .map_or(String::new(), |t| t.iter().collect());
        Line::from(vec![
            Span::styled(" filter ", key),
            Span::raw(format!(" /{before}")),
            Span::styled(under, Style::default().add_modifier(Modifier::REVERSED)),
            Span::raw(after),
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
            ("f", "finding"),
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
