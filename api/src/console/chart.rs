//! Charts as SVG drawn on the server: no script, readable with JavaScript off, and each with a
//! text alternative (`<title>` and `aria-label`) saying what it shows. Geometry is in floating
//! point (pixels), never money: the figures printed beside the bars come formatted from exact
//! values.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

/// Colours with at least 4.5:1 contrast on white.
pub const GREY: &str = "#5f5f5f";
pub const BLUE: &str = "#0a4a8f";
pub const GREEN: &str = "#2e6b30";
pub const RED: &str = "#a4161a";
pub const ORANGE: &str = "#8a4b00";

/// One bar: its label, its value (any unit), how to print it, and its colour.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub shown: String,
    pub colour: &'static str,
}

impl Bar {
    /// A bar of an exact amount (millicores, bytes), printed by `fmt`.
    pub fn of(
        label: &str,
        value: i128,
        fmt: &dyn Fn(i128) -> String,
        colour: &'static str,
    ) -> Self {
        Self {
            label: label.into(),
            value: value as f64,
            shown: fmt(value),
            colour,
        }
    }
}

/// Horizontal bars on one scale (the largest bar, or `scale` when larger).
pub fn bars(title: &str, bars: &[Bar], scale: Option<f64>) -> Markup {
    let max = bars
        .iter()
        .map(|b| b.value)
        .fold(scale.unwrap_or(0.0), f64::max)
        .max(f64::MIN_POSITIVE);
    let (label_w, bar_w, row_h) = (150.0, 300.0, 22.0);
    let width = label_w + bar_w + 140.0;
    let height = row_h * bars.len() as f64 + 4.0;
    let summary: Vec<String> = bars
        .iter()
        .map(|b| format!("{}: {}", b.label, b.shown))
        .collect();
    let alt = format!("{title}. {}", summary.join("; "));
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(alt) width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } {
            title { (alt) }
            @for (i, b) in bars.iter().enumerate() {
                @let y = i as f64 * row_h + 2.0;
                @let w = (b.value.max(0.0) / max * bar_w).max(if b.value > 0.0 { 1.0 } else { 0.0 });
                text x="0" y=(y + 15.0) font-size="13" fill="#1b1b1b" { (b.label) }
                rect x=(label_w) y=(y + 3.0) width=(bar_w) height="14" fill="#eef1f4" {}
                rect x=(label_w) y=(y + 3.0) width=(w) height="14" fill=(b.colour) {}
                text x=(label_w + bar_w + 6.0) y=(y + 15.0) font-size="13" fill="#1b1b1b" { (b.shown) }
            }
        }
    }
}

/// A series of a line chart.
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// Lines over time, with the y axis printed by `y_label`.
pub fn lines(
    title: &str,
    series: &[Series],
    x_label: impl Fn(DateTime<Utc>) -> String,
    y_label: impl Fn(f64) -> String,
) -> Markup {
    let (w, h, left, bottom, top, right) = (680.0, 230.0, 90.0, 40.0, 12.0, 16.0);
    let all: Vec<&(DateTime<Utc>, f64)> = series.iter().flat_map(|s| &s.points).collect();
    let (Some(t0), Some(t1)) = (all.iter().map(|p| p.0).min(), all.iter().map(|p| p.0).max())
    else {
        return html! { p.empty { "—" } };
    };
    let y_max = all
        .iter()
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let span = ((t1 - t0).num_seconds() as f64).max(1.0);
    let x = |t: DateTime<Utc>| left + (t - t0).num_seconds() as f64 / span * (w - left - right);
    let y = |v: f64| top + (1.0 - v / y_max) * (h - top - bottom);
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let alt = format!(
        "{title}: {} ({} – {})",
        names.join(", "),
        x_label(t0),
        x_label(t1)
    );
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(alt) width=(w) height=(h + 22.0 * series.len().div_ceil(3) as f64)
            viewBox={ "0 0 " (w) " " (h + 22.0 * series.len().div_ceil(3) as f64) } {
            title { (alt) }
            @for k in 0..=4 {
                @let v = y_max * f64::from(k) / 4.0;
                line x1=(left) x2=(w - right) y1=(y(v)) y2=(y(v)) stroke="#d0d0d0" {}
                text x=(left - 6.0) y=(y(v) + 4.0) font-size="12" text-anchor="end" fill="#1b1b1b" { (y_label(v)) }
            }
            text x=(left) y=(h - bottom + 18.0) font-size="12" fill="#1b1b1b" { (x_label(t0)) }
            text x=(w - right) y=(h - bottom + 18.0) font-size="12" text-anchor="end" fill="#1b1b1b" { (x_label(t1)) }
            @for s in series {
                @let pts: Vec<String> = s.points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
                polyline points=(pts.join(" ")) fill="none" stroke=(s.colour) stroke-width="2" {}
            }
            @for (i, s) in series.iter().enumerate() {
                @let lx = 10.0 + (i % 3) as f64 * 220.0;
                @let ly = h + 4.0 + (i / 3) as f64 * 22.0;
                rect x=(lx) y=(ly) width="14" height="4" fill=(s.colour) {}
                text x=(lx + 20.0) y=(ly + 6.0) font-size="12" fill="#1b1b1b" { (s.name) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bars_say_what_they_show_and_escape_labels() {
        let svg = bars(
            "CPU",
            &[
                Bar {
                    label: "Đã thuê <x>".into(),
                    value: 4.0,
                    shown: "4 lõi".into(),
                    colour: GREY,
                },
                Bar {
                    label: "Đã dùng".into(),
                    value: 1.0,
                    shown: "1 lõi".into(),
                    colour: GREEN,
                },
            ],
            None,
        )
        .into_string();
        assert!(svg.contains("aria-label=\"CPU. Đã thuê &lt;x&gt;: 4 lõi; Đã dùng: 1 lõi\""));
        assert!(!svg.contains("<x>"));
        // The used bar is a quarter of the reserved one.
        assert!(svg.contains("width=\"300\" height=\"14\" fill=\"#5f5f5f\""));
        assert!(svg.contains("width=\"75\" height=\"14\" fill=\"#2e6b30\""));
    }

    #[test]
    fn lines_span_the_time_axis() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .single()
            .unwrap_or_else(|| panic!("a date"));
        let t1 = Utc
            .with_ymd_and_hms(2026, 11, 2, 0, 0, 0)
            .single()
            .unwrap_or_else(|| panic!("a date"));
        let svg = lines(
            "cpu",
            &[Series {
                name: "prod".into(),
                colour: BLUE,
                points: vec![(t0, 0.0), (t1, 2.0)],
            }],
            |t| t.format("%d/%m").to_string(),
            |v| format!("{v:.1}"),
        )
        .into_string();
        assert!(svg.contains("points=\"90.0,"), "{svg}");
        assert!(svg.contains("01/11") && svg.contains("02/11"));
        assert_eq!(
            lines("x", &[], |_| String::new(), |_| String::new()).into_string(),
            "<p class=\"empty\">—</p>"
        );
    }
}
