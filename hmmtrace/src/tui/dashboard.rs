//! Dashboards: TUI layouts as data. A TOML file names rows of panels, what each panel shows and
//! how much room it gets; the built-in ones (`dashboards/*.toml`) are embedded at compile time.
//! The format is documented in `dashboards/README.md`.

use serde::Deserialize;
use toml::Spanned;

use super::app::Series;
use crate::event::Class;
use crate::textfile::FileError;

/// The built-in dashboards: (name, TOML).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "overview",
        include_str!("../../../dashboards/overview.toml"),
    ),
    (
        "migration",
        include_str!("../../../dashboards/migration.toml"),
    ),
    ("mirror", include_str!("../../../dashboards/mirror.toml")),
];

/// Which top table a panel shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopTable {
    Process,
    Device,
    Symbol,
}

impl TopTable {
    pub fn next(self) -> TopTable {
        match self {
            TopTable::Process => TopTable::Device,
            TopTable::Device => TopTable::Symbol,
            TopTable::Symbol => TopTable::Process,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TopTable::Process => "process",
            TopTable::Device => "device (pgmap owner)",
            TopTable::Symbol => "kernel symbol",
        }
    }
}

/// What a panel shows.
#[derive(Clone, Debug, PartialEq)]
pub enum PanelKind {
    /// Sparklines of events per second, with current and peak.
    Rates { series: Vec<Series> },
    /// Latency histograms with p50/p99/p99.9/max.
    Latency { kinds: Vec<Class> },
    /// The top table by process, device or symbol.
    Top { table: TopTable },
    /// The event log; `filter` is its initial filter (`/` changes it).
    Log { filter: String },
    /// Probe states, lost events and each eBPF program's cost.
    Status,
    /// What the detectors found, and the devices' pages.
    Findings,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub kind: PanelKind,
    pub title: Option<String>,
    /// Relative width within its row.
    pub width: u16,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Relative height.
    pub height: u16,
    pub panels: Vec<Panel>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dashboard {
    pub name: String,
    pub description: String,
    pub rows: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDashboard {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "row")]
    rows: Vec<Spanned<RawRow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    #[serde(default = "one")]
    height: u16,
    #[serde(default, rename = "panel")]
    panels: Vec<Spanned<RawPanel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPanel {
    #[serde(rename = "type")]
    kind: String,
    title: Option<String>,
    #[serde(default = "one")]
    width: u16,
    series: Option<Vec<String>>,
    kinds: Option<Vec<String>>,
    table: Option<TopTable>,
    filter: Option<String>,
}

fn one() -> u16 {
    1
}

const SERIES_NAMES: [(&str, Series); 10] = [
    ("migrate_to_device", Series::ToDevice),
    ("migrate_to_ram", Series::ToRam),
    ("device_fault", Series::DeviceFault),
    ("page_free", Series::PageFree),
    ("invalidation", Series::Invalidation),
    ("interval_invalidate", Series::IntervalInvalidate),
    ("range_fault", Series::RangeFault),
    ("ebusy_retries", Series::Retries),
    ("system_migration", Series::SystemMigration),
    ("lost", Series::Lost),
];

/// At most this many rows: at the smallest panel height (`layout::MIN_H`), 12 rows take 36
/// lines, which a laptop's terminal still has.
pub const MAX_ROWS: usize = 12;
/// At most this many panels in a row: 8 of the smallest width take 64 columns.
pub const MAX_PANELS_PER_ROW: usize = 8;
/// At most this many panels in all.
pub const MAX_PANELS: usize = 48;

/// Panel types, for messages.
const TYPES: &str = "rates, latency, top, log, status, findings";

impl Dashboard {
    /// A built-in dashboard by name, or a file by path.
    pub fn load(name_or_path: &str) -> anyhow::Result<Dashboard> {
        let (file, text) = crate::textfile::builtin_or_file("dashboard", BUILTIN, name_or_path)?;
        Ok(Dashboard::parse(&file, &text)?)
    }

    /// Parses and checks dashboard text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Dashboard, FileError> {
        let err = |offset: usize, message: String| FileError::at(file, text, offset, message);
        let raw: RawDashboard =
            toml::from_str(text).map_err(|e| FileError::toml(file, text, &e))?;
        if raw.rows.is_empty() {
            return Err(err(0, "a dashboard needs at least one [[row]]".into()));
        }
        if raw.rows.len() > MAX_ROWS {
            return Err(err(
                raw.rows[MAX_ROWS].span().start,
                format!(
                    "a dashboard has at most {MAX_ROWS} rows (this one has {}): more could not be \
                     read on a terminal",
                    raw.rows.len()
                ),
            ));
        }
        let mut rows = Vec::new();
        let mut panels_in_all = 0;
        for r in &raw.rows {
            let at = r.span().start;
            let r = r.get_ref();
            if r.panels.len() > MAX_PANELS_PER_ROW {
                return Err(err(
                    r.panels[MAX_PANELS_PER_ROW].span().start,
                    format!(
                        "a row has at most {MAX_PANELS_PER_ROW} panels (this one has {})",
                        r.panels.len()
                    ),
                ));
            }
            if panels_in_all + r.panels.len() > MAX_PANELS {
                return Err(err(
                    r.panels[MAX_PANELS - panels_in_all].span().start,
                    format!("a dashboard has at most {MAX_PANELS} panels in all"),
                ));
            }
            panels_in_all += r.panels.len();
            if !(1..=100).contains(&r.height) {
                return Err(err(at, "row height must be within 1..=100".into()));
            }
            if r.panels.is_empty() {
                return Err(err(at, "a row needs at least one [[row.panel]]".into()));
            }
            let mut panels = Vec::new();
            for p in &r.panels {
                let at = p.span().start;
                panels.push(panel(p.get_ref()).map_err(|m| err(at, m))?);
            }
            rows.push(Row {
                height: r.height,
                panels,
            });
        }
        Ok(Dashboard {
            name: raw.name,
            description: raw.description,
            rows,
        })
    }

    /// Every panel, in reading order.
    pub fn panels(&self) -> impl Iterator<Item = &Panel> {
        self.rows.iter().flat_map(|r| r.panels.iter())
    }
}

fn panel(p: &RawPanel) -> Result<Panel, String> {
    if !(1..=100).contains(&p.width) {
        return Err("panel width must be within 1..=100".into());
    }
    let only = |what: &str, set: bool, kinds: &[&str]| {
        if set && !kinds.contains(&p.kind.as_str()) {
            Err(format!(
                "`{what}` applies to panels of type {}, not '{}'",
                kinds.join(" or "),
                p.kind
            ))
        } else {
            Ok(())
        }
    };
    // The type first: a misspelt type is the mistake, not the options it would have taken.
    let kind = match p.kind.as_str() {
        "rates" => PanelKind::Rates {
            series: match &p.series {
                None => Series::ALL.to_vec(),
                Some(names) => names
                    .iter()
                    .map(|n| {
                        SERIES_NAMES
                            .iter()
                            .find(|(s, _)| s == n)
                            .map(|(_, s)| *s)
                            .ok_or_else(|| {
                                format!(
                                    "unknown series '{n}' (one of: {})",
                                    SERIES_NAMES.map(|(s, _)| s).join(", ")
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?,
            },
        },
        "latency" => PanelKind::Latency {
            kinds: match &p.kinds {
                None => Class::TIMED.to_vec(),
                Some(names) => names
                    .iter()
                    .map(|n| {
                        Class::TIMED
                            .iter()
                            .find(|k| k.name() == n)
                            .copied()
                            .ok_or_else(|| {
                                format!(
                                    "'{n}' is not a kind with latencies (one of: {})",
                                    Class::TIMED.map(|k| k.name()).join(", ")
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?,
            },
        },
        "top" => PanelKind::Top {
            table: p.table.unwrap_or(TopTable::Process),
        },
        "log" => {
            let filter = p.filter.clone().unwrap_or_default();
            super::filter::Filter::parse(&filter)?;
            PanelKind::Log { filter }
        }
        "status" => PanelKind::Status,
        "findings" => PanelKind::Findings,
        other => return Err(format!("unknown panel type '{other}' (one of: {TYPES})")),
    };
    only("series", p.series.is_some(), &["rates"])?;
    only("kinds", p.kinds.is_some(), &["latency"])?;
    only("table", p.table.is_some(), &["top"])?;
    only("filter", p.filter.is_some(), &["log"])?;
    if matches!(&kind, PanelKind::Rates { series } if series.is_empty())
        || matches!(&kind, PanelKind::Latency { kinds } if kinds.is_empty())
    {
        return Err("an empty list shows nothing: leave it out for all".into());
    }
    Ok(Panel {
        kind,
        title: p.title.clone(),
        width: p.width,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_have_every_panel_type_between_them() {
        let mut types = std::collections::HashSet::new();
        for (name, _) in BUILTIN {
            let d = Dashboard::load(name).unwrap();
            assert_eq!(d.name, *name);
            for p in d.panels() {
                types.insert(std::mem::discriminant(&p.kind));
            }
        }
        assert_eq!(types.len(), 6, "rates, latency, top, log, status, findings");
    }

    fn err(text: &str) -> String {
        Dashboard::parse("d.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn bad_files_name_file_line_and_reason() {
        let head = "name = \"x\"\n[[row]]\n";
        let e = err(&format!("{head}[[row.panel]]\ntype = \"pie\"\n"));
        assert!(
            e.starts_with("d.toml:3:") && e.contains("unknown panel type 'pie'"),
            "{e}"
        );
        // A misspelt type is named as such, not blamed on the options it would take.
        let e = err(&format!(
            "{head}[[row.panel]]\ntype = \"logs\"\nfilter = \"kind:migration\"\n"
        ));
        assert!(
            e.starts_with("d.toml:3:") && e.contains("unknown panel type 'logs'"),
            "{e}"
        );
        let e = err(&format!(
            "{head}[[row.panel]]\ntype = \"rates\"\nseries = [\"migrations\"]\n"
        ));
        assert!(
            e.starts_with("d.toml:3:") && e.contains("unknown series 'migrations'"),
            "{e}"
        );
        let e = err(&format!(
            "{head}[[row.panel]]\ntype = \"top\"\nkinds = [\"lost\"]\n"
        ));
        assert!(
            e.contains("`kinds` applies to panels of type latency"),
            "{e}"
        );
        let e = err(&format!(
            "{head}[[row.panel]]\ntype = \"latency\"\nkinds = [\"lost\"]\n"
        ));
        assert!(e.contains("'lost' is not a kind with latencies"), "{e}");
        let e = err(&format!(
            "{head}[[row.panel]]\ntype = \"log\"\nfilter = \"kind:nope\"\n"
        ));
        assert!(e.contains("kind:nope: no such kind"), "{e}");
        let e = err(&format!(
            "{head}[[row.panel]]\ntype = \"top\"\ntable = \"gpu\"\n"
        ));
        assert!(e.starts_with("d.toml:5:"), "{e}");
        let e = err(&format!("{head}[[row.panel]]\ntype = \"log\"\nwidth = 0\n"));
        assert!(e.contains("width must be within 1..=100"), "{e}");
        let e = err("name = \"x\"\n[[row]]\nheight = 2\n");
        assert!(
            e.starts_with("d.toml:2:") && e.contains("at least one [[row.panel]]"),
            "{e}"
        );
        let e = err("name = \"x\"\n");
        assert!(e.contains("at least one [[row]]"), "{e}");
        let e = err("name = \"x\"\ncolour = 1\n[[row]]\n");
        assert!(
            e.starts_with("d.toml:2:") && e.contains("unknown field"),
            "{e}"
        );
        let e = Dashboard::load("no-such-dashboard")
            .unwrap_err()
            .to_string();
        assert!(e.contains("built-ins: overview, migration, mirror"), "{e}");
    }
}
