//! The dashboard's grid: where each panel goes for a terminal size, computed by hand and kept
//! until the size changes (`Ui::grid`).
//!
//! Why not ratatui's `Layout` for this: it solves constraints with the kasuari (Cassowary)
//! solver, whose cost grows far faster than the constraints do. Measured here with ratatui
//! 0.30 (release build, random weights 1..=100): one `Layout` of 40 `Fill` panels in 40
//! columns took 0.2 to 0.5 s to solve, one of 60 in 160 columns or of 100 in 40 did not finish
//! in 60 s. That was the hang of issue 18 (a dashboard of rows of 40 panels spun a core in
//! `Solver::add_constraint`, once per row per frame, whenever ratatui's layout cache missed:
//! a new size, or a weight set it had not seen). Rows and panels only ever split an area by
//! weight, which is a few lines: every row (panel) gets [`MIN_H`] ([`MIN_W`]) cells first, the
//! rest goes by weight (largest remainder), in one pass. When even the minimums do not fit,
//! the dashboard says so instead of drawing panels nobody could read.

use ratatui::layout::Rect;

use super::dashboard::Dashboard;

/// The smallest panel drawn: a border and one line of content.
pub const MIN_H: u16 = 3;
/// The smallest panel drawn: a border and a few characters of its title.
pub const MIN_W: u16 = 8;

/// Where the panels go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grid {
    /// Each row's panels' areas, in the dashboard's order.
    Fits(Vec<Vec<Rect>>),
    /// The area cannot give every panel its minimum: the size (width, height) it would take.
    TooSmall { need: (u16, u16) },
}

/// Splits `len` cells from `start` by `weights` (none 0), each part at least `min`; `None` when
/// `len` cannot hold every minimum.
pub fn split(start: u16, len: u16, min: u16, weights: &[u16]) -> Option<Vec<(u16, u16)>> {
    let n = weights.len() as u32;
    let need = n * u32::from(min);
    if n == 0 || u32::from(len) < need {
        return None;
    }
    let spare = u32::from(len) - need;
    let total: u32 = weights.iter().map(|w| u32::from(*w).max(1)).sum();
    let mut parts: Vec<u32> = weights
        .iter()
        .map(|w| spare * u32::from(*w).max(1) / total)
        .collect();
    // Largest remainder: the cells the division left go to the parts it shorted most.
    // Fewer than `n`: each fraction was below one.
    let left = spare - parts.iter().sum::<u32>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(spare * u32::from(weights[i]).max(1) % total));
    for &i in order.iter().take(left as usize) {
        parts[i] += 1;
    }
    let mut at = u32::from(start);
    Some(
        parts
            .into_iter()
            .map(|p| {
                let len = p + u32::from(min);
                let part = (at as u16, len as u16);
                at += len;
                part
            })
            .collect(),
    )
}

/// The grid of `dashboard` in `body`.
pub fn grid(dashboard: &Dashboard, body: Rect) -> Grid {
    let widest = dashboard
        .rows
        .iter()
        .map(|r| r.panels.len() as u16)
        .max()
        .unwrap_or(1);
    let need = (
        widest.saturating_mul(MIN_W),
        (dashboard.rows.len() as u16).saturating_mul(MIN_H),
    );
    let heights: Vec<u16> = dashboard.rows.iter().map(|r| r.height).collect();
    let Some(rows) = split(body.y, body.height, MIN_H, &heights) else {
        return Grid::TooSmall { need };
    };
    let mut out = Vec::with_capacity(rows.len());
    for (row, (y, h)) in dashboard.rows.iter().zip(rows) {
        let widths: Vec<u16> = row.panels.iter().map(|p| p.width).collect();
        let Some(cols) = split(body.x, body.width, MIN_W, &widths) else {
            return Grid::TooSmall { need };
        };
        out.push(
            cols.into_iter()
                .map(|(x, w)| Rect::new(x, y, w, h))
                .collect(),
        );
    }
    Grid::Fits(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_fill_the_length_exactly_keep_their_minimum_and_follow_the_weights() {
        let p = split(2, 100, 3, &[1, 1, 2]).unwrap();
        assert_eq!(p.iter().map(|(_, l)| u32::from(*l)).sum::<u32>(), 100);
        assert_eq!(p[0].0, 2);
        assert!(p.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
        // 91 spare cells by 1:1:2, the remainder to the largest fractions.
        assert_eq!(p.iter().map(|(_, l)| *l).collect::<Vec<_>>(), [26, 26, 48]);
        // A weight of 100 beside 1 still leaves the small part its minimum.
        let p = split(0, 20, 3, &[100, 1]).unwrap();
        assert_eq!(p, [(0, 17), (17, 3)]);
        assert_eq!(split(0, 5, 3, &[1, 1]), None);
        assert_eq!(split(0, 5, 3, &[]), None);
        let p = split(0, u16::MAX, 3, &[100; 8]).unwrap();
        assert_eq!(
            p.last().map(|(s, l)| u32::from(*s) + u32::from(*l)),
            Some(65535)
        );
    }
}
