//! Any text as a dashboard file: parsed or refused with a position, never a panic; and what
//! parses is drawn at a size the input picks (1×1 to 300×100), which must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (size, rest) = data.split_at(data.len().min(2));
    let width = 1 + (u32::from(*size.first().unwrap_or(&80)) * 300 / 256) as u16;
    let height = 1 + (u32::from(*size.get(1).unwrap_or(&24)) * 100 / 256) as u16;
    if let Ok(text) = std::str::from_utf8(rest) {
        match hmmtrace::tui::dashboard::Dashboard::parse("fuzz.toml", text) {
            Err(e) => assert!(e.line >= 1 && e.column >= 1, "{e}"),
            Ok(d) => {
                let app = hmmtrace::tui::app::App::new("fuzz".into(), false);
                let ui = hmmtrace::tui::ui::Ui::new(d, None);
                hmmtrace::tui::render::draw_offscreen(&app, &ui, width, height);
            }
        }
    }
});
