//! The census as text and as an HTML section (JSON is its serde form).

use std::fmt::Write as _;

use super::Census;
use crate::report::html::esc;

/// Taint letters the census explains (the kernel's `taint_flags`).
fn taint_words(taint: &str) -> Vec<&'static str> {
    taint
        .chars()
        .filter_map(|c| match c {
            'P' => Some("proprietary"),
            'O' => Some("out of tree"),
            'E' => Some("unsigned"),
            'F' => Some("force-loaded"),
            'C' => Some("staging"),
            'X' => Some("auxiliary"),
            _ => None,
        })
        .collect()
}

/// Over what time calls were counted, or that some were not.
fn watched(c: &Census) -> String {
    if c.not_counted.is_empty() {
        format!("calls counted over {:.1}s", c.watched_ns as f64 / 1e9)
    } else {
        format!(
            "calls counted over {:.1}s except for {} (see the end)",
            c.watched_ns as f64 / 1e9,
            c.not_counted.len()
        )
    }
}

fn module_line(m: &super::Module) -> String {
    let taint = if m.taint.is_empty() {
        "not tainted".to_string()
    } else {
        format!("taint {} ({})", m.taint, taint_words(&m.taint).join(", "))
    };
    let license = m.license.as_deref().unwrap_or("license unknown");
    match &m.file {
        Some(f) => format!("{} [{license}; {taint}; {f}]", m.name),
        None => format!("{} [{taint}; no .ko file found: imports unknown]", m.name),
    }
}

pub fn text(c: &Census) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "census of HMM and ZONE_DEVICE exports on {} ({}; {})",
        c.release,
        c.symvers.as_deref().map_or_else(
            || "no Module.symvers: export types unknown; the exports are 6.12's that this kernel has".to_string(),
            |p| format!("exports from {p}")
        ),
        watched(c)
    );
    let width = c
        .exports
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        o,
        "{:<width$}  {:<17}  {:<10}  {:>9}  importers; callers",
        "export", "type", "defined in", "calls"
    );
    for e in &c.exports {
        let defined = if e.defined_in.is_empty() {
            "(absent)"
        } else {
            &e.defined_in
        };
        let callers: Vec<String> = e.callers.iter().map(ToString::to_string).collect();
        let importers = if e.importers.is_empty() {
            "-".to_string()
        } else {
            e.importers.join(", ")
        };
        let _ = writeln!(
            o,
            "{:<width$}  {:<17}  {:<10}  {:>9}  {importers}; {}",
            e.name,
            e.export_type.to_string(),
            defined,
            e.calls(),
            if callers.is_empty() {
                "-".to_string()
            } else {
                callers.join(", ")
            }
        );
    }
    let _ = writeln!(o, "\nloaded modules:");
    for m in &c.modules {
        let _ = writeln!(o, "  {}", module_line(m));
    }
    let dangling: Vec<&str> = c.dangling().map(|e| e.name.as_str()).collect();
    let unread = c.unread_modules().count();
    let _ = writeln!(
        o,
        "\nexports with no consumer (no loaded module imports them{}, no call seen): {}",
        if unread > 0 {
            format!("; {unread} module file(s) not read could")
        } else {
            String::new()
        },
        if dangling.is_empty() {
            "none".to_string()
        } else {
            dangling.join(", ")
        }
    );
    if !c.not_counted.is_empty() {
        let _ = writeln!(
            o,
            "calls not counted (these exports' consumers are the importers above only): {}",
            c.not_counted.join("; ")
        );
    }
    if c.uncounted_calls > 0 {
        let _ = writeln!(
            o,
            "{} calls were not counted (the kernel's census map was full)",
            c.uncounted_calls
        );
    }
    o
}

/// The census as a section of the HTML report.
pub fn html(c: &Census) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<h2 id="census">Census of HMM's exports</h2><p>{} · {} · {}</p><table><tr><th class="l">export</th><th class="l">type</th><th class="l">defined in</th><th>calls</th><th class="l">importers</th><th class="l">callers</th></tr>"#,
        esc(&c.release),
        esc(c
            .symvers
            .as_deref()
            .unwrap_or("no Module.symvers: export types unknown")),
        c.watched_ns as f64 / 1e9
    );
    for e in &c.exports {
        let callers: Vec<String> = e.callers.iter().map(ToString::to_string).collect();
        let _ = write!(
            o,
            r#"<tr{}><td class="l">{}</td><td class="l">{}</td><td class="l">{}</td><td>{}</td><td class="l">{}</td><td class="l">{}</td></tr>"#,
            if e.dangling() {
                r#" class="dangling""#
            } else {
                ""
            },
            esc(&e.name),
            e.export_type,
            esc(&e.defined_in),
            e.calls(),
            esc(&e.importers.join(", ")),
            esc(&callers.join(", "))
        );
    }
    o.push_str("</table><h3>Loaded modules</h3><ul>");
    for m in &c.modules {
        let _ = write!(o, "<li>{}</li>", esc(&module_line(m)));
    }
    let dangling: Vec<&str> = c.dangling().map(|e| e.name.as_str()).collect();
    let _ = write!(
        o,
        "</ul><p>Exports with no consumer: {}</p><p>{}</p>",
        esc(&if dangling.is_empty() {
            "none".to_string()
        } else {
            dangling.join(", ")
        }),
        esc(&if c.not_counted.is_empty() {
            String::new()
        } else {
            format!("Calls not counted: {}", c.not_counted.join("; "))
        })
    );
    o
}
