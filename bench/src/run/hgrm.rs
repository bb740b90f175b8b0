//! A histogram in HdrHistogram's percentile-distribution text (`.hgrm`), the format that
//! HdrHistogram's `outputPercentileDistribution` writes and its plotter
//! (<https://hdrhistogram.github.io/HdrHistogram/plotFiles.html>) reads: values scaled to
//! milliseconds, five ticks per half distance to 100 %, then mean, deviation, maximum and
//! count.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Ticks per halving of the distance to the 100th percentile (HdrHistogram's default).
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// `histogram` (recorded in µs) as `.hgrm` text, values in ms.
#[must_use]
pub fn percentile_distribution(histogram: &Histogram<u64>) -> String {
    let scale = 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for value in histogram.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += value.count_since_last_iteration();
        let level = value.quantile_iterated_to();
        let scaled = histogram.highest_equivalent(value.value_iterated_to()) as f64 / scale;
        if level < 1.0 {
            let _ = writeln!(
                out,
                "{scaled:12.3} {level:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - level)
            );
        } else {
            let _ = writeln!(out, "{scaled:12.3} {level:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        histogram.mean() / scale,
        histogram.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        histogram.max() as f64 / scale,
        histogram.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        histogram.distinct_values()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distribution_ends_at_the_maximum_and_counts_everything() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for micros in 1..=10_000u64 {
            histogram.record(micros).expect("in range");
        }
        let text = percentile_distribution(&histogram);
        let rows: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .skip(1)
            .collect();
        let first: Vec<&str> = rows[0].split_whitespace().collect();
        assert_eq!(first[0], "0.001");
        let last: Vec<&str> = rows[rows.len() - 1].split_whitespace().collect();
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "10000");
        assert!(
            (last[0].parse::<f64>().expect("a number") - 10.0).abs() < 0.01,
            "{}",
            last[0]
        );
        assert!(text.contains("Total count    =        10000"), "{text}");
    }
}
