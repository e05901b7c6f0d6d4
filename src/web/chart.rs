//! Bar charts as inline SVG geometry, computed here and drawn by the templates: no script,
//! no remote library. Every bar segment links to the events behind it.

use super::format::thousands;

/// Drawing area, in SVG user units (the SVG scales to its box, keeping its proportions).
const PLOT_TOP: f64 = 8.0;
/// Room right of the last column, for its centred label.
const PLOT_RIGHT_PAD: f64 = 18.0;
const PLOT_LEFT: f64 = 44.0;
const LABEL_SPACE: f64 = 22.0;
/// Most x-axis labels drawn, and the room each needs; others are skipped so they never
/// overlap.
const MAX_LABELS: usize = 8;
const LABEL_WIDTH: f64 = 90.0;

/// One part of a column: a count, its colour class, and where clicking it leads.
#[derive(Debug, Clone)]
pub struct Segment {
    pub count: u64,
    pub class: String,
    pub href: String,
    /// The tooltip (SVG `<title>`), also read by screen readers.
    pub title: String,
}

/// One column (a time bucket, an hour of the day, a category).
#[derive(Debug, Clone)]
pub struct Column {
    pub label: String,
    pub segments: Vec<Segment>,
}

/// A drawn rectangle; coordinates are preformatted for the template.
#[derive(Debug, Clone)]
pub struct Rect {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    pub class: String,
    pub href: String,
    pub title: String,
}

#[derive(Debug, Clone)]
pub struct Label {
    pub x: String,
    pub text: String,
}

/// A laid-out chart.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub width: String,
    pub height: String,
    pub rects: Vec<Rect>,
    pub labels: Vec<Label>,
    /// Where the x labels sit.
    pub label_y: String,
    /// The value of the top grid line, and its y.
    pub max_label: String,
    pub top_y: String,
    pub base_y: String,
    pub plot_left: String,
    pub plot_right: String,
    /// Nothing to draw: the template shows an empty state instead.
    pub empty: bool,
    /// A text summary for screen readers.
    pub summary: String,
}

fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// Lays out stacked columns in a `width` × `height` box.
pub fn stacked(columns: &[Column], width: f64, height: f64, summary: String) -> BarChart {
    let plot_bottom = height - LABEL_SPACE;
    let plot_height = plot_bottom - PLOT_TOP;
    let totals: Vec<u64> = columns
        .iter()
        .map(|c| c.segments.iter().map(|s| s.count).sum())
        .collect();
    let max = nice_max(totals.iter().copied().max().unwrap_or(0));
    let plot_right = width - PLOT_RIGHT_PAD;
    let slot = (plot_right - PLOT_LEFT) / columns.len().max(1) as f64;
    let gap = (slot * 0.15).min(4.0);
    let mut rects = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        let x = PLOT_LEFT + i as f64 * slot + gap / 2.0;
        let mut y = plot_bottom;
        for segment in column.segments.iter().filter(|s| s.count > 0) {
            let h = segment.count as f64 / max as f64 * plot_height;
            y -= h;
            rects.push(Rect {
                x: n(x),
                y: n(y),
                w: n((slot - gap).max(0.5)),
                h: n(h.max(0.5)),
                class: segment.class.clone(),
                href: segment.href.clone(),
                title: segment.title.clone(),
            });
        }
    }
    let max_labels = MAX_LABELS.min((width / LABEL_WIDTH) as usize).max(1);
    let every = columns.len().div_ceil(max_labels).max(1);
    let labels = columns
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, c)| Label {
            x: n(PLOT_LEFT + (i as f64 + 0.5) * slot),
            text: c.label.clone(),
        })
        .collect();
    BarChart {
        width: n(width),
        height: n(height),
        rects,
        labels,
        label_y: n(height - 6.0),
        max_label: thousands(max),
        top_y: n(PLOT_TOP),
        base_y: n(plot_bottom),
        plot_left: n(PLOT_LEFT),
        plot_right: n(plot_right),
        empty: totals.iter().all(|&t| t == 0),
        summary,
    }
}

/// The smallest "round" number (1, 2 or 5 × 10^k) at or above `max`, so the top grid
/// line has a readable value.
fn nice_max(max: u64) -> u64 {
    if max <= 1 {
        return 1;
    }
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if let Some(v) = step.checked_mul(m) {
                if v >= max {
                    return v;
                }
            }
        }
        match step.checked_mul(10) {
            Some(s) => step = s,
            None => return max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(counts: &[u64]) -> Column {
        Column {
            label: "x".into(),
            segments: counts
                .iter()
                .map(|&count| Segment {
                    count,
                    class: "c".into(),
                    href: "/e".into(),
                    title: "t".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn round_maxima() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(200), 200);
        assert_eq!(nice_max(201), 500);
    }

    #[test]
    fn stacks_segments_and_skips_zeros() {
        let chart = stacked(
            &[column(&[5, 0, 5]), column(&[0])],
            720.0,
            200.0,
            "s".into(),
        );
        assert!(!chart.empty);
        assert_eq!(chart.rects.len(), 2, "zero segments are not drawn");
        // The two segments of the first column fill the plot exactly (10 of max 10).
        let top: f64 = chart.rects[1].y.parse().expect("a number");
        assert!((top - PLOT_TOP).abs() < 0.11, "{top}");
        assert!(stacked(&[column(&[0])], 720.0, 200.0, "s".into()).empty);
    }

    #[test]
    fn labels_never_crowd() {
        let columns: Vec<Column> = (0..168).map(|_| column(&[1])).collect();
        assert!(stacked(&columns, 720.0, 200.0, "s".into()).labels.len() <= MAX_LABELS);
    }
}
