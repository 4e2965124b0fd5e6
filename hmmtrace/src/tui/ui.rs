//! What the viewer chose (help shown, filter, scroll, pause, which table and histogram), and the
//! keys that change it. Kept apart from [`super::app::App`], which only sources change.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use tui_input::backend::crossterm::EventHandler as _;
use tui_input::Input;

use super::app::{App, LogEntry};
use super::dashboard::{Dashboard, PanelKind, TopTable};
use super::filter::Filter;
pub use crate::pipeline::source::replay::ReplayControl;

/// Seconds one ←/→ press seeks.
pub const SEEK_STEP_NS: i64 = 10_000_000_000;

/// How top tables are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopSort {
    Events,
    Pages,
    Time,
    Max,
}

impl TopSort {
    pub fn next(self) -> TopSort {
        match self {
            TopSort::Events => TopSort::Pages,
            TopSort::Pages => TopSort::Time,
            TopSort::Time => TopSort::Max,
            TopSort::Max => TopSort::Events,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TopSort::Events => "events",
            TopSort::Pages => "pages",
            TopSort::Time => "total time",
            TopSort::Max => "max latency",
        }
    }
}

pub struct Ui {
    pub dashboard: Dashboard,
    pub help: bool,
    /// The filter being typed after `/`: a line editor (cursor keys, Ctrl-A/E/U/W/K, ...).
    pub editing: Option<Input>,
    /// The filter the user set, overriding each log panel's own; `None` until one is set.
    pub filter: Option<(String, Filter)>,
    /// Why the last typed filter was refused.
    pub filter_error: Option<String>,
    /// Log lines scrolled up from the newest.
    pub scroll: usize,
    /// How far the log panel could scroll when last drawn (lines that match, less the
    /// panel's height): scrolling keys stop there.
    pub max_scroll: Cell<usize>,
    /// The log as it was when paused (space, when not replaying): the panel shows this while
    /// new events keep arriving.
    pub paused: Option<VecDeque<LogEntry>>,
    /// Latency panels show the whole run instead of the rolling window.
    pub since_start: bool,
    pub top_table: Option<TopTable>,
    pub top_sort: TopSort,
    pub quit: bool,
    pub replay: Option<Arc<ReplayControl>>,
    /// The finding whose events the log shows (`f`), by index into the app's kept findings.
    pub finding: Option<usize>,
    /// The dashboard's grid for the last body area drawn: computed once per terminal size.
    grid: std::cell::RefCell<Option<(ratatui::layout::Rect, super::layout::Grid)>>,
}

impl Ui {
    pub fn new(dashboard: Dashboard, replay: Option<Arc<ReplayControl>>) -> Ui {
        Ui {
            dashboard,
            help: false,
            editing: None,
            filter: None,
            filter_error: None,
            scroll: 0,
            max_scroll: Cell::new(usize::MAX),
            paused: None,
            since_start: false,
            top_table: None,
            top_sort: TopSort::Events,
            quit: false,
            replay,
            finding: None,
            grid: std::cell::RefCell::new(None),
        }
    }

    /// Where the dashboard's panels go in `body`: the grid kept from the last frame when the
    /// area is the same, else computed (and kept).
    pub fn grid(&self, body: ratatui::layout::Rect) -> super::layout::Grid {
        let mut kept = self.grid.borrow_mut();
        match &*kept {
            Some((area, grid)) if *area == body => grid.clone(),
            _ => {
                let grid = super::layout::grid(&self.dashboard, body);
                *kept = Some((body, grid.clone()));
                grid
            }
        }
    }

    /// The filter a log panel uses: the user's, else the panel's own.
    pub fn log_filter(&self, panel_filter: &str) -> Filter {
        match &self.filter {
            Some((_, f)) => f.clone(),
            None => Filter::parse(panel_filter).unwrap_or_default(),
        }
    }

    /// The filter text shown in a log panel's title.
    pub fn log_filter_text<'a>(&'a self, panel_filter: &'a str) -> &'a str {
        self.filter
            .as_ref()
            .map_or(panel_filter, |(t, _)| t.as_str())
    }

    pub fn key(&mut self, k: KeyEvent, app: &App) {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        if let Some(input) = &mut self.editing {
            match k.code {
                KeyCode::Enter => {
                    let text = input.value().to_string();
                    self.editing = None;
                    match Filter::parse(&text) {
                        Ok(f) => {
                            self.filter = Some((text, f));
                            self.filter_error = None;
                            self.scroll = 0;
                        }
                        Err(e) => self.filter_error = Some(e),
                    }
                }
                KeyCode::Esc => self.editing = None,
                // Everything else edits the line: characters, Backspace/Delete, ←/→, Home/End,
                // Ctrl-A/E (start/end), Ctrl-U (the line), Ctrl-W (a word), Ctrl-K (to the end).
                _ => {
                    input.handle_event(&TermEvent::Key(k));
                }
            }
            return;
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            if k.code != KeyCode::Char('q') {
                return;
            }
        }
        match k.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Esc => {
                self.filter_error = None;
            }
            KeyCode::Char('/') => {
                let text = self
                    .filter
                    .as_ref()
                    .map_or_else(|| self.first_log_filter(), |(t, _)| t.clone());
                self.editing = Some(Input::new(text));
            }
            KeyCode::Char(' ') => match &self.replay {
                Some(r) => {
                    r.paused.fetch_xor(true, Ordering::Relaxed);
                }
                None => {
                    self.paused = match self.paused {
                        Some(_) => None,
                        None => Some(app.log.clone()),
                    };
                    self.scroll = 0;
                }
            },
            KeyCode::Char('w') => self.since_start = !self.since_start,
            KeyCode::Char('t') => {
                let current = self.top_table.unwrap_or_else(|| self.first_top_table());
                self.top_table = Some(current.next());
            }
            KeyCode::Char('s') => self.top_sort = self.top_sort.next(),
            KeyCode::Char('f') => self.next_finding(app),
            KeyCode::Up => self.scroll_to(self.scroll.saturating_add(1)),
            KeyCode::Down => self.scroll_to(self.scroll.saturating_sub(1)),
            KeyCode::PageUp => self.scroll_to(self.scroll.saturating_add(10)),
            KeyCode::PageDown => self.scroll_to(self.scroll.saturating_sub(10)),
            KeyCode::Home => self.scroll_to(usize::MAX),
            KeyCode::End => self.scroll = 0,
            KeyCode::Char('+') | KeyCode::Char('=') => self.speed(2.0),
            KeyCode::Char('-') => self.speed(0.5),
            KeyCode::Right => self.seek(SEEK_STEP_NS),
            KeyCode::Left => self.seek(-SEEK_STEP_NS),
            _ => {}
        }
    }

    /// Selects the next finding in the panel's order and filters the log to its events; after
    /// the last, back to no selection and the log's own filter.
    fn next_finding(&mut self, app: &App) {
        let order = super::render::findings::order(app);
        let next = match self
            .finding
            .and_then(|f| order.iter().position(|i| *i == f))
        {
            Some(pos) => order.get(pos + 1).copied(),
            None => order.first().copied(),
        };
        self.finding = next;
        self.scroll = 0;
        self.filter = next.map(|i| {
            let text = Filter::text_of(&app.findings.kept[i], app.first_ts.unwrap_or(0));
            let f = Filter::parse(&text).expect("a finding's filter parses");
            (text, f)
        });
    }

    /// Scrolls to `lines` up from the newest, at most as far as the log goes.
    fn scroll_to(&mut self, lines: usize) {
        self.scroll = lines.min(self.max_scroll.get());
    }

    /// Whether the view or the replay is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
            || self
                .replay
                .as_ref()
                .is_some_and(|r| r.paused.load(Ordering::Relaxed))
    }

    fn speed(&self, factor: f64) {
        if let Some(r) = &self.replay {
            r.set_speed(r.speed() * factor);
        }
    }

    fn seek(&self, ns: i64) {
        if let Some(r) = &self.replay {
            r.seek_ns.fetch_add(ns, Ordering::Relaxed);
        }
    }

    fn first_log_filter(&self) -> String {
        self.dashboard
            .panels()
            .find_map(|p| match &p.kind {
                PanelKind::Log { filter } => Some(filter.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    fn first_top_table(&self) -> TopTable {
        self.dashboard
            .panels()
            .find_map(|p| match p.kind {
                PanelKind::Top { table } => Some(table),
                _ => None,
            })
            .unwrap_or(TopTable::Process)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEvent;

    fn app() -> App {
        let (header, _) = crate::fixtures::scenario("migrate", 1);
        let mut app = App::new(String::new(), false);
        app.begin(&header);
        app
    }

    fn press(ui: &mut Ui, app: &App, keys: &str) {
        for c in keys.chars() {
            let code = match c {
                '\n' => KeyCode::Enter,
                '\x1b' => KeyCode::Esc,
                c => KeyCode::Char(c),
            };
            ui.key(KeyEvent::new(code, KeyModifiers::NONE), app);
        }
    }

    #[test]
    fn keys_change_the_view() {
        let app = app();
        let mut ui = Ui::new(Dashboard::load("migration").unwrap(), None);
        press(&mut ui, &app, "w");
        assert!(ui.since_start);
        press(&mut ui, &app, "t");
        assert_eq!(
            ui.top_table,
            Some(TopTable::Symbol),
            "the dashboard's device table, then next"
        );
        press(&mut ui, &app, "ss");
        assert_eq!(ui.top_sort, TopSort::Time);
        press(&mut ui, &app, " ");
        assert_eq!(ui.paused.as_ref().map(|l| l.len()), Some(app.log.len()));
        assert!(ui.is_paused());
        press(&mut ui, &app, "?");
        assert!(ui.help);
        press(&mut ui, &app, "x");
        assert!(!ui.help && !ui.quit, "any key closes the help");
        // `/` starts from the panel's filter.
        press(&mut ui, &app, "/");
        assert_eq!(
            ui.editing.as_ref().map(|i| i.value()),
            Some("kind:migration,device_fault")
        );
        ui.editing = Some(Input::default());
        press(&mut ui, &app, "pid:q\n");
        assert!(ui.filter_error.as_deref().unwrap().contains("not a number"));
        assert!(!ui.quit, "q typed into the filter does not quit");
        press(&mut ui, &app, "\x1b/");
        ui.editing = Some(Input::default());
        press(&mut ui, &app, "kind:page_free\n");
        assert_eq!(ui.log_filter_text("ignored"), "kind:page_free");
        ui.key(
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
            &app,
        );
        assert!(ui.quit);
    }

    #[test]
    fn the_filter_editor_has_cursor_keys_and_line_editing() {
        let app = app();
        let mut ui = Ui::new(Dashboard::load("overview").unwrap(), None);
        let key = |code, m| KeyEvent::new(code, m);
        let ctrl = |c| key(KeyCode::Char(c), KeyModifiers::CONTROL);
        ui.editing = Some(Input::default());
        press(&mut ui, &app, "comm:train kind:migration");
        // Ctrl-W deletes the word before the cursor, not a 'w'.
        ui.key(ctrl('w'), &app);
        assert_eq!(ui.editing.as_ref().unwrap().value(), "comm:train ");
        // Cursor keys move; typing inserts at the cursor.
        ui.key(key(KeyCode::Home, KeyModifiers::NONE), &app);
        press(&mut ui, &app, "pid:1 ");
        ui.key(key(KeyCode::End, KeyModifiers::NONE), &app);
        ui.key(key(KeyCode::Left, KeyModifiers::NONE), &app);
        press(&mut ui, &app, "x");
        assert_eq!(ui.editing.as_ref().unwrap().value(), "pid:1 comm:trainx ");
        // Ctrl-U clears the line.
        ui.key(ctrl('u'), &app);
        assert_eq!(ui.editing.as_ref().unwrap().value(), "");
        assert!(!ui.quit);
    }

    #[test]
    fn scrolling_stops_where_the_log_does() {
        let app = app();
        let mut ui = Ui::new(Dashboard::load("overview").unwrap(), None);
        // The log panel, as last drawn, could scroll 7 lines.
        ui.max_scroll.set(7);
        ui.key(KeyEvent::new(KeyCode::Home, KeyModifiers::NONE), &app);
        assert_eq!(ui.scroll, 7, "Home goes to the oldest line, no further");
        ui.key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE), &app);
        assert_eq!(ui.scroll, 6, "and Down moves at once");
        ui.key(KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE), &app);
        assert_eq!(ui.scroll, 0);
    }

    #[test]
    fn replay_keys_drive_the_replay() {
        let app = app();
        let ctrl = Arc::new(ReplayControl::new(1.0));
        let mut ui = Ui::new(
            Dashboard::load("overview").unwrap(),
            Some(Arc::clone(&ctrl)),
        );
        press(&mut ui, &app, " ");
        assert!(ctrl.paused.load(Ordering::Relaxed));
        assert!(ui.paused.is_none(), "space pauses the replay, not the log");
        press(&mut ui, &app, "++");
        assert_eq!(ctrl.speed(), 4.0);
        press(&mut ui, &app, &"-".repeat(20));
        assert_eq!(ctrl.speed(), crate::pipeline::source::replay::MIN_SPEED);
        ui.key(KeyEvent::new(KeyCode::Right, KeyModifiers::NONE), &app);
        ui.key(KeyEvent::new(KeyCode::Left, KeyModifiers::NONE), &app);
        ui.key(KeyEvent::new(KeyCode::Left, KeyModifiers::NONE), &app);
        assert_eq!(ctrl.seek_ns.load(Ordering::Relaxed), -SEEK_STEP_NS);
        press(&mut ui, &app, "q");
        assert!(ui.quit);
    }
}
