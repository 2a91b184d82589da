//! An SVG bar chart of the throughput ratios (traced / untraced), one bar per traced arm, with
//! the spread as a whisker and reference lines at 1.0 and 0.9.

use super::report::Row;

pub fn ratios(rows: &[Row]) -> String {
    let bars: Vec<&Row> = rows.iter().filter(|r| r.arm != "untraced").collect();
    let (left, top, bar_h, gap, width) = (260.0, 30.0, 22.0, 10.0, 520.0);
    let height = top + bars.len() as f64 * (bar_h + gap) + 40.0;
    // Ratios from 0.5 to 1.1 fill the width.
    let x = |r: f64| left + ((r.clamp(0.5, 1.1) - 0.5) / 0.6) * width;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"18\" font-size=\"14\">Throughput traced / untraced (median of paired rounds, whiskers: min–max)</text>\n",
        left + width + 60.0
    );
    for (label, r) in [("1.00", 1.0), ("0.90", 0.9), ("0.70", 0.7), ("0.50", 0.5)] {
        svg += &format!(
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#bbb\" stroke-dasharray=\"3,3\"/><text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{label}</text>\n",
            x(r),
            height - 30.0,
            height - 15.0
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = top + i as f64 * (bar_h + gap);
        let colour = if b.ratio >= 0.97 {
            "#4c9a2a"
        } else if b.ratio >= 0.9 {
            "#e0a000"
        } else {
            "#c0392b"
        };
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} · {}</text>\n\
             <rect x=\"{left}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bar_h}\" fill=\"{colour}\"/>\n\
             <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{:.3}</text>\n",
            left - 8.0,
            y + 15.0,
            b.workload,
            b.arm,
            (x(b.ratio) - left).max(0.0),
            x(b.ratio_min),
            y + bar_h / 2.0,
            x(b.ratio_max),
            y + bar_h / 2.0,
            x(b.ratio.max(b.ratio_max)) + 6.0,
            y + 15.0,
            b.ratio
        );
    }
    svg += "</svg>\n";
    svg
}
