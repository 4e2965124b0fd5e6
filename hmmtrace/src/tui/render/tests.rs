//! Every panel and every built-in dashboard drawn on ratatui's TestBackend, with the numbers on
//! screen checked against the state they come from.

use super::*;
use crate::capture::CaptureHeader;
use crate::event::{Class, Event};
use crate::probe::{Mechanism, PlanEntry, Role, Status};
use crate::report::text::fmt_ns;
use crate::tui::app::{ProgramCost, Series};
use crate::tui::dashboard::{Dashboard, BUILTIN};
use crate::tui::render::latency::{buckets, column};
use crate::tui::ui::Ui;

fn events(scenario: &str) -> (CaptureHeader, Vec<Event>) {
    crate::fixtures::scenario(scenario, 1)
}

/// The state after `scenario`, its events spread over the seconds of their own clock.
fn app_of(scenario: &str) -> App {
    let (header, evs) = events(scenario);
    let mut app = App::new(format!("engine: {scenario}"), false);
    app.begin(&header);
    for e in &evs {
        app.ingest(std::slice::from_ref(e), e.ts_ns);
    }
    app
}

fn screen(app: &App, ui: &Ui, w: u16, h: u16) -> String {
    draw_offscreen(app, ui, w, h)
}

fn ui(name: &str) -> Ui {
    Ui::new(Dashboard::load(name).unwrap(), None)
}

/// A dashboard of one panel.
fn single(toml_panel: &str) -> Ui {
    let text = format!("name = \"t\"\n[[row]]\n[[row.panel]]\n{toml_panel}\n");
    Ui::new(Dashboard::parse("t.toml", &text).unwrap(), None)
}

#[test]
fn rates_panel_shows_each_series_with_its_totals() {
    let app = app_of("migrate_fault");
    let s = screen(&app, &single("type = \"rates\""), 120, 14);
    for series in Series::ALL {
        let line = s
            .lines()
            .find(|l| l.contains(series.name()))
            .unwrap_or_else(|| panic!("{} missing:\n{s}", series.name()));
        let total = app.rates[&series].total;
        assert!(
            line.contains(&format!("Σ {:>6}", fmt_count(total))),
            "{line}"
        );
    }
    assert!(app.rates[&Series::ToDevice].total > 0 && app.rates[&Series::ToRam].total > 0);
}

#[test]
fn latency_panel_marks_the_histograms_percentiles() {
    let app = app_of("migrate_fault");
    let mut u = single("type = \"latency\"\nkinds = [\"migration\", \"device_fault\"]");
    u.since_start = true;
    let s = screen(&app, &u, 120, 12);
    let h = app.latency[&Class::Migration].since_start();
    let line = s.lines().find(|l| l.contains("migration")).unwrap();
    assert!(line.contains(&format!("n={}", h.count)), "{line}");
    assert!(
        line.contains(&format!("M:p50 {}", fmt_ns(h.quantile(0.5)))),
        "{line}"
    );
    // The exact maximum, the figure the report and the top table show.
    let exact = app.latency[&Class::Migration].since_start.max().unwrap();
    assert_eq!(h.quantile(1.0), exact);
    assert!(line.contains(&format!("X:max {}", fmt_ns(exact))), "{line}");
    assert!(s.contains("latency since start"), "{s}");
    assert!(
        s.contains("1us") && s.contains("1ms"),
        "the axis is labelled:\n{s}"
    );
    // The max marker sits in the column its value maps to.
    let lines: Vec<&str> = s.lines().collect();
    let at = lines.iter().position(|l| l.contains("migration")).unwrap();
    let marks: Vec<char> = lines[at + 2].chars().collect();
    // The label column is the longest kind shown ("device_fault") and a space.
    let label = "device_fault".len() as u16 + 1;
    let plot_w = 120 - 2 - label;
    let col = 1 + label as usize + column(exact, plot_w) as usize;
    assert_eq!(marks[col], 'X', "{}", lines[at + 2]);
    // Every recorded event lands in one column.
    assert_eq!(buckets(h.histogram, plot_w).iter().sum::<u64>(), h.count);
    // The rolling window is the default, and says so.
    let s = screen(&app, &single("type = \"latency\""), 120, 20);
    assert!(s.contains("latency, last 10.00s"), "{s}");
}

#[test]
fn top_panel_lists_processes_devices_and_symbols() {
    let app = app_of("multiple_devices");
    let mut u = single("type = \"top\"\ntable = \"device\"");
    let s = screen(&app, &u, 120, 10);
    assert!(s.contains("dmirror0") && s.contains("dmirror1"), "{s}");
    let row = &app.by_device.rows["dmirror0"];
    let line = s.lines().find(|l| l.contains("dmirror0")).unwrap();
    assert!(line.contains(&fmt_count(row.events)), "{line}");
    u.top_table = Some(crate::tui::dashboard::TopTable::Symbol);
    let s = screen(&app, &u, 120, 12);
    assert!(
        s.contains("migrate_vma_setup") && s.contains("kernel symbol"),
        "{s}"
    );
    u.top_table = Some(crate::tui::dashboard::TopTable::Process);
    let s = screen(&app, &u, 60, 10);
    assert!(
        s.contains("hmm-tests [1000]"),
        "narrow tables keep the name:\n{s}"
    );
}

#[test]
fn log_panel_shows_the_newest_matching_events_and_pauses() {
    let mut app = app_of("mirror_busy");
    let mut u = single("type = \"log\"\nfilter = \"kind:range_fault\"");
    let s = screen(&app, &u, 120, 8);
    let shown = s.lines().filter(|l| l.contains("s range_fault ")).count();
    assert_eq!(shown, app.total(Class::RangeFault) as usize, "{s}");
    assert!(s.contains("retries"), "{s}");
    assert!(!s.contains("invalidation "), "filtered out:\n{s}");
    // Paused: events that arrive later are not shown, however many (the log's own capacity
    // turns over; the pause keeps what was on screen).
    u.paused = Some(app.log.clone());
    u.filter = Some((String::new(), Default::default()));
    let before = screen(&app, &u, 120, 8);
    let (_, more) = events("gpu-stream");
    app.ingest(&more, 0);
    assert!(more.len() > crate::tui::app::LOG_CAPACITY);
    let after = screen(&app, &u, 120, 8);
    // The title bar counts the new events; the log below it does not move.
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_ne!(before.lines().next(), after.lines().next());
    assert_eq!(body(&before), body(&after));
    assert!(after.contains("PAUSED"));
    u.paused = None;
    let newest = super::log::describe(app.log.back().unwrap());
    assert!(screen(&app, &u, 120, 8).contains(&newest), "{newest}");
}

#[test]
fn status_panel_names_each_module_callback_and_how_it_was_found() {
    use crate::pipeline::PlanChange;
    use crate::probe::Found;
    let mut app = app_of("migrate");
    let row = |symbol: &str, found: Found| PlanEntry {
        role: Role::PageFree,
        symbol: symbol.into(),
        module: "mydrv".into(),
        mechanisms: vec![Mechanism::Kprobe],
        status: Status::Attached(Mechanism::Kprobe),
        found,
    };
    app.status(&crate::pipeline::Status::Plan(std::sync::Arc::new(
        PlanChange {
            at_ns: 1,
            changes: vec!["mydrv loaded: mydrv_free (page_free) attached (kprobe)".into()],
            plan: vec![
                row("mydrv_free", Found::Table),
                row(
                    "mydrv_free2",
                    Found::Discovered {
                        ops: 1,
                        ops_symbol: "mydrv_pagemap_ops".into(),
                    },
                ),
            ],
        },
    )));
    let s = screen(&app, &single("type = \"status\""), 110, 14);
    assert!(s.contains("page_free        2/2 via kprobe"), "{s}");
    assert!(s.contains("mydrv_free [mydrv] attached (kprobe)"), "{s}");
    assert!(
        s.contains("mydrv_free2 [mydrv] attached (kprobe), discovered in mydrv_pagemap_ops"),
        "{s}"
    );
    assert!(s.contains("mydrv loaded: mydrv_free (page_free)"), "{s}");
}

#[test]
fn status_panel_shows_probes_losses_and_costs() {
    let mut app = app_of("migrate");
    let s = screen(&app, &single("type = \"status\""), 100, 12);
    assert!(s.contains("lost 0") && s.contains("probes: none"), "{s}");
    app.source.probes = vec![
        PlanEntry {
            role: Role::MigrateVmaSetup,
            symbol: "migrate_vma_setup".into(),
            module: String::new(),
            mechanisms: vec![Mechanism::Kprobe],
            status: Status::Attached(Mechanism::Kprobe),
            found: Default::default(),
        },
        PlanEntry {
            role: Role::HmmRangeFault,
            symbol: "hmm_range_fault".into(),
            module: String::new(),
            mechanisms: Vec::new(),
            status: Status::NotInKernel,
            found: Default::default(),
        },
    ];
    app.costs = vec![ProgramCost {
        name: "kprobe_migrate_vma_setup".into(),
        run_cnt: 10,
        run_time_ns: 12_340,
    }];
    let mut lost = events("migrate").1[0];
    lost.body = crate::event::Body::Lost(hmmtrace_common::Lost {
        count: 5,
        probe: 0,
        _pad: 0,
    });
    app.ingest(&[lost], 0);
    let s = screen(&app, &single("type = \"status\""), 100, 12);
    assert!(
        s.contains("LOST 5 events") && s.contains("migration 5"),
        "{s}"
    );
    assert!(s.contains("1/1 via kprobe"), "{s}");
    assert!(s.contains("none: not in this kernel"), "{s}");
    assert!(
        s.contains("kprobe_migrate_vma_setup") && s.contains("1.234us each"),
        "{s}"
    );
    assert!(
        screen(&app, &ui("overview"), 120, 30).contains("LOST 5"),
        "title bar too"
    );
}

#[test]
fn every_builtin_dashboard_draws_its_panels_at_80x24_and_larger() {
    let app = app_of("gpu-stream");
    for (name, _) in BUILTIN {
        for (w, h) in [(80, 24), (120, 40), (200, 60)] {
            let u = ui(name);
            let s = screen(&app, &u, w, h);
            assert!(s.contains(&format!("[{name}]")), "{name} {w}x{h}:\n{s}");
            assert!(s.contains("q  quit"), "footer {name} {w}x{h}:\n{s}");
            for p in u.dashboard.panels() {
                let title = match &p.kind {
                    PanelKind::Rates { .. } => "events per second",
                    PanelKind::Latency { .. } => "latency",
                    PanelKind::Top { .. } => "top",
                    PanelKind::Log { .. } => p.title.as_deref().unwrap_or("events"),
                    PanelKind::Status => "status",
                    PanelKind::Findings => "findings",
                };
                assert!(s.contains(title), "{name} {w}x{h} lacks {title}:\n{s}");
            }
        }
    }
    // Too small to be useful still draws without panicking.
    screen(&app, &ui("overview"), 20, 5);
}

#[test]
fn help_overlay_and_filter_editor() {
    let app = app_of("migrate");
    let mut u = ui("overview");
    u.help = true;
    let s = screen(&app, &u, 120, 40);
    for (k, what) in super::help::KEYS {
        let start: String = what.chars().take(20).collect();
        assert!(s.contains(k) && s.contains(&start), "{k}:\n{s}");
    }
    u.help = false;
    u.editing = Some(tui_input::Input::new("kind:migr".into()));
    assert!(screen(&app, &u, 120, 40).contains("/kind:migr"));
    u.editing = None;
    u.filter_error = Some("kind:x: no such kind".into());
    assert!(screen(&app, &u, 120, 40).contains("bad filter: kind:x"));
}

#[test]
fn at_80x24_numbers_are_whole_or_left_out() {
    let app = app_of("gpu-stream");
    // A duration token as the panels print it: digits, then a unit.
    let duration = |t: &str| {
        ["ns", "us", "ms", "s"].iter().any(|u| {
            t.strip_suffix(u)
                .is_some_and(|d| !d.is_empty() && d.parse::<f64>().is_ok())
        })
    };
    for (name, _) in BUILTIN {
        let u = ui(name);
        let s = screen(&app, &u, 80, 24);
        let cells: Vec<&str> = s.lines().flat_map(|l| l.split('│')).collect();
        for cell in &cells {
            let tokens: Vec<&str> = cell.split_whitespace().collect();
            for (i, t) in tokens.iter().enumerate() {
                // Latency marks ("M:p50 150.5us"): the number after each is whole.
                if t.len() > 2 && t.as_bytes()[1] == b':' && "M93X".contains(&t[..1]) {
                    let next = tokens.get(i + 1).copied().unwrap_or("");
                    assert!(duration(next), "{name}: {t} {next:?} cut:\n{s}");
                }
                // Rate totals ("Σ 65.5k"): the whole count.
                if *t == "Σ" {
                    let next = tokens.get(i + 1).copied().unwrap_or("");
                    assert!(
                        Series::ALL
                            .iter()
                            .any(|x| fmt_count(app.rates[x].total) == next),
                        "{name}: Σ {next:?} cut:\n{s}"
                    );
                }
            }
        }
        // Top tables: each shown row's numbers are whole.
        for (key, row) in app.by_process.rows.iter().chain(&app.by_device.rows) {
            if let Some(line) = cells
                .iter()
                .find(|c| c.trim_start().starts_with(&format!("{key} ")))
            {
                let rest = line.trim_start()[key.len()..]
                    .split_whitespace()
                    .collect::<Vec<_>>();
                assert!(!rest.is_empty(), "{name}: {key} has no numbers:\n{s}");
                assert_eq!(rest[0], fmt_count(row.events), "{name}:\n{s}");
                assert!(
                    rest[1..].iter().all(|t| duration(t)
                        || t.parse::<f64>().is_ok()
                        || t.trim_end_matches(['k', 'M', 'G']).parse::<f64>().is_ok()),
                    "{name}: {key} {rest:?}:\n{s}"
                );
            }
        }
        // Every kind of a latency panel keeps its line when the panel has the rows.
        for p in u.dashboard.panels() {
            if let PanelKind::Latency { kinds } = &p.kind {
                for k in kinds {
                    assert!(
                        cells
                            .iter()
                            .any(|c| c.trim_start().starts_with(&format!("{} ", k.name()))),
                        "{name}: {} missing:\n{s}",
                        k.name()
                    );
                }
            }
        }
    }
}

#[test]
fn every_dashboard_says_paused_and_ended_in_its_title() {
    let mut app = app_of("migrate");
    for (name, _) in BUILTIN {
        let mut u = ui(name);
        u.paused = Some(app.log.clone());
        let s = screen(&app, &u, 80, 24);
        assert!(s.lines().next().unwrap().contains("PAUSED"), "{name}:\n{s}");
    }
    app.finished = Some("no more events".into());
    let s = screen(&app, &ui("overview"), 120, 30);
    let title = s.lines().next().unwrap();
    assert!(
        title.contains("ended: no more events") && !title.contains("running"),
        "{title}"
    );
}

/// The state after `scenario` with the detectors' findings, as `Detect` hands them over.
fn app_with_findings(scenario: &str) -> App {
    let (header, evs) = events(scenario);
    let mut app = App::new(format!("engine: {scenario}"), false);
    app.begin(&header);
    app.status(&crate::pipeline::Status::Detecting);
    let mut d = crate::findings::Detectors::new(crate::findings::Config::default());
    d.begin(&header);
    let mut found = Vec::new();
    for e in &evs {
        app.ingest(std::slice::from_ref(e), e.ts_ns);
        d.event(e, &mut found);
    }
    d.finish(&mut found);
    for f in &found {
        app.finding(f);
    }
    app
}

#[test]
fn the_findings_panel_lists_findings_and_f_shows_one_findings_events_in_the_log() {
    let app = app_with_findings("pingpong");
    let mut u = ui("overview");
    let s = screen(&app, &u, 160, 48);
    assert!(
        s.contains("WARN") && s.contains("thrashing") && s.contains("pingpong [1000]"),
        "{s}"
    );
    assert!(
        s.contains("dmirror0: held 0 in 128 lived p50"),
        "device pages:\n{s}"
    );
    // f: the log shows the finding's events only.
    u.key(
        crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('f'),
            crossterm::event::KeyModifiers::NONE,
        ),
        &app,
    );
    let (text, filter) = u.filter.clone().expect("a filter");
    assert!(
        text.starts_with("pid:1000 t:") && text.contains("addr:0x10000000..0x10010000"),
        "{text}"
    );
    let finding = &app.findings.kept[u.finding.unwrap()];
    let t0 = app.first_ts.unwrap();
    let shown: Vec<_> = app.log.iter().filter(|e| filter.matches(e, t0)).collect();
    assert!(!shown.is_empty());
    assert!(shown.iter().all(|e| finding.covers(&e.event)));
    let s = screen(&app, &u, 160, 48);
    assert!(s.contains("matching 'pid:1000"), "{s}");
    // After the last finding, the log shows everything again.
    u.key(
        crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('f'),
            crossterm::event::KeyModifiers::NONE,
        ),
        &app,
    );
    assert!(u.filter.is_none() && u.finding.is_none());
    // Without detectors, the panel says so rather than "no findings".
    let plain = app_of("pingpong");
    assert!(screen(&plain, &single("type = \"findings\""), 120, 10).contains("not running"));
}

/// A dashboard of `rows` (each a list of (type, width)) with the given heights.
fn dashboard_text(rows: &[(u16, Vec<(usize, u16)>)]) -> String {
    const TYPES: [&str; 6] = ["rates", "latency", "top", "log", "status", "findings"];
    let mut t = String::from("name = \"random\"\n");
    for (height, panels) in rows {
        t.push_str(&format!("[[row]]\nheight = {height}\n"));
        for (kind, width) in panels {
            t.push_str(&format!(
                "[[row.panel]]\ntype = \"{}\"\nwidth = {width}\n",
                TYPES[*kind]
            ));
        }
    }
    t
}

fn random_rows() -> impl proptest::strategy::Strategy<Value = Vec<(u16, Vec<(usize, u16)>)>> {
    use proptest::prelude::*;
    let row = (
        1u16..=100,
        proptest::collection::vec((0usize..6, 1u16..=100), 1..=8),
    );
    proptest::collection::vec(row, 1..=12).prop_map(|mut rows| {
        // Within the limit of panels in all: trim from the end.
        let mut left = crate::tui::dashboard::MAX_PANELS;
        rows.retain_mut(|(_, panels)| {
            panels.truncate(left);
            left -= panels.len();
            !panels.is_empty()
        });
        rows
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    /// A hang detector, not a speed target: every dashboard the format accepts, at every
    /// terminal size from 1×1 to 300×100, draws within a second (a layout solver once spun for
    /// minutes on one), and every panel it draws lies inside the screen.
    #[test]
    fn any_accepted_dashboard_draws_within_a_second_at_any_size(
        rows in random_rows(),
        width in 1u16..=300,
        height in 1u16..=100,
    ) {
        let text = dashboard_text(&rows);
        let d = Dashboard::parse("random.toml", &text).unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let app = app_of("migrate");
            let ui = Ui::new(d, None);
            ready_tx.send(()).unwrap();
            let screen = draw_offscreen(&app, &ui, width, height);
            let grid = ui.grid(ratatui::layout::Rect::new(0, 1, width, height.saturating_sub(2)));
            let _ = done_tx.send((screen, grid));
        });
        ready_rx.recv().unwrap();
        let (screen, grid) = done_rx
            .recv_timeout(std::time::Duration::from_secs(1))
            .expect("a frame took more than a second: the layout hangs");
        proptest::prop_assert_eq!(screen.lines().count(), usize::from(height));
        match grid {
            crate::tui::layout::Grid::Fits(rows) => {
                for r in rows.iter().flatten() {
                    proptest::prop_assert!(r.right() <= width && r.bottom() < height, "{:?}", r);
                    proptest::prop_assert!(r.width >= crate::tui::layout::MIN_W && r.height >= crate::tui::layout::MIN_H);
                }
            }
            crate::tui::layout::Grid::TooSmall { .. } => {
                proptest::prop_assert!(height < 3 || screen.contains("terminal") || width < 20);
            }
        }
    }
}

#[test]
fn a_dashboard_past_its_limits_is_refused_at_the_row_or_panel_that_passes_them() {
    let rows = |n: usize, per: usize| dashboard_text(&vec![(1, vec![(0, 1); per]); n]);
    let e = Dashboard::parse("d.toml", &rows(13, 1)).unwrap_err();
    assert!(e.message.contains("at most 12 rows"), "{e}");
    // The 13th [[row]]: after the name and 12 rows of 5 lines.
    assert_eq!(e.line, 2 + 12 * 5, "{e}");
    let e = Dashboard::parse("d.toml", &rows(1, 9)).unwrap_err();
    assert!(e.message.contains("at most 8 panels"), "{e}");
    let e = Dashboard::parse("d.toml", &rows(7, 8)).unwrap_err();
    assert!(e.message.contains("at most 48 panels in all"), "{e}");
    assert!(Dashboard::parse("d.toml", &rows(6, 8)).is_ok());
    assert!(Dashboard::parse("d.toml", &rows(12, 4)).is_ok());
}

#[test]
fn a_terminal_too_small_for_the_dashboard_says_so_and_what_it_needs() {
    let app = app_of("migrate");
    let u = ui("overview");
    let s = draw_offscreen(&app, &u, 30, 8);
    assert!(s.contains("terminal too small"), "{s}");
    let (w, h) =
        match crate::tui::layout::grid(&u.dashboard, ratatui::layout::Rect::new(0, 1, 30, 6)) {
            crate::tui::layout::Grid::TooSmall { need } => need,
            other => panic!("{other:?}"),
        };
    // At that size every panel gets its minimum and the note is gone.
    let s = draw_offscreen(&app, &u, w.max(40), h + 2);
    assert!(!s.contains("terminal too small"), "{s}");
}
