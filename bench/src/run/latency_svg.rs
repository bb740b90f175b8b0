//! A picture of latency over time: for each interval of the run, the median, the 99th
//! percentile and the maximum as three lines on a logarithmic latency axis, with the
//! throughput as bars underneath. Plain SVG, written by hand: no plotting dependency, and
//! any browser shows it.

use std::fmt::Write as _;

/// One interval of the run.
#[derive(Clone, Copy, Debug)]
pub struct Interval {
    /// Seconds since measuring began, at the interval's end.
    pub end_s: f64,
    /// Operations completed in it.
    pub operations: u64,
    /// Its length, seconds.
    pub length_s: f64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Maximum, µs.
    pub max_us: u64,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const LATENCY_BOTTOM: f64 = 360.0;
const BARS_TOP: f64 = 390.0;
const BARS_BOTTOM: f64 = 480.0;

/// The SVG document.
#[must_use]
pub fn render(title: &str, intervals: &[Interval]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="22" font-size="15">{}</text>"#,
        escape(title)
    );
    let end_s = intervals.last().map_or(1.0, |last| last.end_s).max(1e-3);
    let x = |seconds: f64| LEFT + (WIDTH - LEFT - RIGHT) * seconds / end_s;
    // Latency axis: powers of ten around the data, in µs.
    let lowest = intervals.iter().map(|i| i.p50_us.max(1)).min().unwrap_or(1);
    let highest = intervals
        .iter()
        .map(|i| i.max_us.max(1))
        .max()
        .unwrap_or(10);
    let decade_low = (lowest as f64).log10().floor();
    let decade_high = (highest as f64).log10().ceil().max(decade_low + 1.0);
    let y = |micros: u64| {
        let fraction = ((micros.max(1) as f64).log10() - decade_low) / (decade_high - decade_low);
        LATENCY_BOTTOM - (LATENCY_BOTTOM - TOP) * fraction
    };
    let mut decade = decade_low;
    while decade <= decade_high {
        let micros = 10f64.powf(decade) as u64;
        let height = y(micros);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{height:.1}" y2="{height:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            height + 4.0,
            latency_label(micros)
        );
        decade += 1.0;
    }
    for (name, colour, pick) in [
        (
            "max",
            "#d62728",
            (|i: &Interval| i.max_us) as fn(&Interval) -> u64,
        ),
        ("p99", "#ff7f0e", |i: &Interval| i.p99_us),
        ("p50", "#1f77b4", |i: &Interval| i.p50_us),
    ] {
        let points: Vec<String> = intervals
            .iter()
            .map(|interval| format!("{:.1},{:.1}", x(interval.end_s), y(pick(interval))))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        );
        let legend_x = match name {
            "max" => WIDTH - 200.0,
            "p99" => WIDTH - 140.0,
            _ => WIDTH - 80.0,
        };
        let _ = writeln!(
            out,
            r#"<rect x="{legend_x}" y="12" width="12" height="12" fill="{colour}"/><text x="{}" y="22">{name}</text>"#,
            legend_x + 16.0
        );
    }
    // Throughput bars.
    let rates: Vec<f64> = intervals
        .iter()
        .map(|interval| interval.operations as f64 / interval.length_s.max(1e-9))
        .collect();
    let top_rate = rates.iter().copied().fold(1.0, f64::max);
    let mut start_s = 0.0;
    for (interval, rate) in intervals.iter().zip(&rates) {
        let height = (BARS_BOTTOM - BARS_TOP) * rate / top_rate;
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{height:.1}" fill="#9ecae1"/>"##,
            x(start_s),
            BARS_BOTTOM - height,
            (x(interval.end_s) - x(start_s) - 1.0).max(0.5)
        );
        start_s = interval.end_s;
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{:.1}">{} ops/s at most</text>"#,
        LEFT + 4.0,
        BARS_TOP - 4.0,
        top_rate.round()
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds (latency per interval above, throughput below)</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 12.0
    );
    for tick in 0..=10 {
        let seconds = end_s * f64::from(tick) / 10.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{seconds:.1}</text>"#,
            x(seconds),
            BARS_BOTTOM + 16.0
        );
    }
    out.push_str("</svg>\n");
    out
}

fn latency_label(micros: u64) -> String {
    if micros >= 1_000_000 {
        format!("{} s", micros / 1_000_000)
    } else if micros >= 1000 {
        format!("{} ms", micros / 1000)
    } else {
        format!("{micros} µs")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_has_a_line_per_percentile_and_a_bar_per_interval() {
        let intervals: Vec<Interval> = (1..=5)
            .map(|second| Interval {
                end_s: f64::from(second),
                operations: 1000 * u64::from(second as u32),
                length_s: 1.0,
                p50_us: 300,
                p99_us: 900,
                max_us: 4000,
            })
            .collect();
        let svg = render("a <run>", &intervals);
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches(r##"fill="#9ecae1""##).count(), 5);
        assert!(svg.contains("a &lt;run&gt;"));
        assert!(svg.contains("1 ms") && svg.contains("100 µs"), "{svg}");
        assert!(svg.ends_with("</svg>\n"));
    }
}
