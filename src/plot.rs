//! Plain SVG plots of a series and its detector: the values with the baseline
//! band, the z-score with the threshold, and alert spans shaded.
//!
//! No dependencies and no scripts: the output is a standalone SVG document
//! that a browser, `rsvg-convert` or an `<img>` tag shows as it is. Used by
//! `driftwatch replay --plot`, and sized by [`Layout`] so small plots fit in
//! a status page table.

use std::fmt::Write;

use crate::detector::{Direction, Evaluation};

/// One evaluated sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotPoint {
    pub at_ms: i64,
    pub value: f64,
    /// `None` while learning.
    pub zscore: Option<f64>,
    /// The baseline the sample was compared against.
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
}

impl PlotPoint {
    pub fn new(at_ms: i64, evaluation: &Evaluation) -> PlotPoint {
        PlotPoint {
            at_ms,
            value: evaluation.value,
            zscore: evaluation.zscore,
            mean: evaluation.mean,
            stddev: evaluation.stddev,
        }
    }

    fn extremity(&self) -> f64 {
        self.zscore.map_or(-1.0, f64::abs)
    }
}

/// A bounded record of a series for plotting: at most `cap` points. When
/// full, neighbours are merged pairwise and each later point stands for
/// twice as many samples, keeping in every stretch the sample with the
/// largest |z|, so a spike survives any thinning.
#[derive(Debug, Clone)]
pub struct Thinned {
    cap: usize,
    points: Vec<PlotPoint>,
    /// Samples per point.
    stride: usize,
    /// Samples in the last point's stretch so far.
    filled: usize,
}

impl Thinned {
    pub fn new(cap: usize) -> Thinned {
        Thinned {
            cap: cap.max(2),
            points: Vec::new(),
            stride: 1,
            filled: 0,
        }
    }

    pub fn push(&mut self, point: PlotPoint) {
        if self.filled > 0 && self.filled < self.stride {
            self.filled += 1;
            if let Some(last) = self.points.last_mut() {
                if point.extremity() > last.extremity() {
                    *last = point;
                }
            }
            return;
        }
        if self.points.len() >= self.cap {
            self.halve();
        }
        self.points.push(point);
        self.filled = 1;
    }

    fn halve(&mut self) {
        let merged: Vec<PlotPoint> = self
            .points
            .chunks(2)
            .map(|pair| match pair {
                [a, b] if b.extremity() > a.extremity() => *b,
                [a, ..] => *a,
                [] => unreachable!("chunks are never empty"),
            })
            .collect();
        self.points = merged;
        self.stride *= 2;
    }

    pub fn points(&self) -> &[PlotPoint] {
        &self.points
    }
}

/// One series to draw.
#[derive(Debug, Clone)]
pub struct PlotSeries<'a> {
    pub title: &'a str,
    pub points: &'a [PlotPoint],
    /// (start, end) of each alert, Unix ms.
    pub alerts: Vec<(i64, i64)>,
    pub threshold: f64,
    pub direction: Direction,
}

/// Sizes, in SVG user units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub value_height: f64,
    pub z_height: f64,
    /// Titles, axis labels and the legend; off for a thumbnail.
    pub text: bool,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            width: 960.0,
            value_height: 220.0,
            z_height: 110.0,
            text: true,
        }
    }
}

impl Layout {
    /// A thumbnail for a table cell: both panels, no text.
    pub fn small() -> Layout {
        Layout {
            width: 240.0,
            value_height: 50.0,
            z_height: 24.0,
            text: false,
        }
    }

    fn margin(&self) -> (f64, f64, f64) {
        // (left, top of a series block, gap between panels)
        if self.text {
            (70.0, 28.0, 18.0)
        } else {
            (2.0, 2.0, 4.0)
        }
    }

    fn block_height(&self) -> f64 {
        let (_, top, gap) = self.margin();
        top + self.value_height + gap + self.z_height + if self.text { 30.0 } else { 4.0 }
    }
}

/// Renders every series one below the other in one SVG document.
pub fn render(series: &[PlotSeries<'_>], layout: &Layout) -> String {
    let height = layout.block_height() * series.len().max(1) as f64;
    let mut svg = String::with_capacity(4096 + 200 * series.len());
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <style>.band{{fill:#9ecae1;fill-opacity:.45;stroke:none}}\
         .bandline{{fill:none;stroke:#3182bd;stroke-dasharray:4 3}}\
         .mean{{fill:none;stroke:#3182bd;stroke-width:.8}}\
         .series{{fill:none;stroke:#222;stroke-width:1}}\
         .zscore{{fill:none;stroke:#756bb1;stroke-width:1}}\
         .threshold{{stroke:#d62728;stroke-dasharray:5 3}}\
         .alert{{fill:#d62728;fill-opacity:.18}}\
         .frame{{fill:none;stroke:#aaa}}</style>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n",
        w = fmt(layout.width),
        h = fmt(height),
    );
    for (i, s) in series.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<g transform=\"translate(0,{})\">",
            fmt(layout.block_height() * i as f64)
        );
        block(&mut svg, s, layout);
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n");
    svg
}

/// Maps data to one panel's pixels.
struct Frame {
    x0: f64,
    width: f64,
    y0: f64,
    height: f64,
    t_min: i64,
    t_max: i64,
    lo: f64,
    hi: f64,
}

impl Frame {
    fn x(&self, at_ms: i64) -> f64 {
        let span = (self.t_max - self.t_min).max(1) as f64;
        self.x0 + (at_ms - self.t_min) as f64 / span * self.width
    }

    fn y(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo, self.hi);
        self.y0 + (self.hi - v) / (self.hi - self.lo) * self.height
    }
}

fn block(svg: &mut String, s: &PlotSeries<'_>, layout: &Layout) {
    let (left, top, gap) = layout.margin();
    let width = layout.width - left - if layout.text { 16.0 } else { 2.0 };
    let (t_min, t_max) = time_range(s);
    let (lo, hi) = value_range(s);
    let values = Frame {
        x0: left,
        width,
        y0: top,
        height: layout.value_height,
        t_min,
        t_max,
        lo,
        hi,
    };
    let z_limit = z_range(s);
    let zs = Frame {
        y0: top + layout.value_height + gap,
        height: layout.z_height,
        lo: -z_limit,
        hi: z_limit,
        ..values
    };
    if layout.text {
        svg.push_str("<text x=\"4\" y=\"16\" font-weight=\"bold\">");
        escape_into(svg, s.title);
        svg.push_str("</text>\n");
    }
    // Frames go under the lines, so a value clamped to a panel's edge (a
    // z-score far past the scale) stays visible.
    for frame in [&values, &zs] {
        alert_rects(svg, s, frame);
        let _ = writeln!(
            svg,
            "<rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            fmt(frame.x0),
            fmt(frame.y0),
            fmt(frame.width),
            fmt(frame.height)
        );
    }
    band(svg, s, &values);
    let mean = polyline(s.points, &values, |p| p.mean);
    path(svg, "mean", &mean);
    let series = polyline(s.points, &values, |p| Some(p.value));
    path(svg, "series", &series);
    thresholds(svg, s, &zs);
    let z = polyline(s.points, &zs, |p| p.zscore);
    path(svg, "zscore", &z);
    if layout.text {
        labels(svg, s, &values, &zs);
    }
}

fn time_range(s: &PlotSeries<'_>) -> (i64, i64) {
    let times = s.points.iter().map(|p| p.at_ms);
    let spans = s.alerts.iter().flat_map(|&(a, b)| [a, b]);
    let (lo, hi) = times
        .chain(spans)
        .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if lo > hi {
        (0, 1)
    } else {
        (lo, hi.max(lo + 1))
    }
}

/// The values' range, widened to show the band but never so far that a
/// huge band flattens the series.
fn value_range(s: &PlotSeries<'_>) -> (f64, f64) {
    let (vlo, vhi) = min_max(s.points.iter().map(|p| p.value));
    let span = (vhi - vlo).max(vhi.abs().max(1e-9) * 1e-3);
    let (blo, bhi) = min_max(
        s.points
            .iter()
            .filter_map(|p| Some((p.mean?, p.stddev?)))
            .flat_map(|(m, sd)| [m - s.threshold * sd, m + s.threshold * sd]),
    );
    let lo = blo.max(vlo - span).min(vlo);
    let hi = bhi.min(vhi + span).max(vhi);
    let pad = (hi - lo) * 0.05;
    if lo.is_finite() && hi.is_finite() {
        (lo - pad, hi + pad.max(1e-12))
    } else {
        (0.0, 1.0)
    }
}

fn z_range(s: &PlotSeries<'_>) -> f64 {
    let biggest = s
        .points
        .iter()
        .filter_map(|p| p.zscore)
        .filter(|z| z.is_finite())
        .fold(0.0_f64, |m, z| m.max(z.abs()));
    biggest
        .min(10.0 * s.threshold)
        .max(2.0 * s.threshold)
        .max(1.0)
}

fn min_max(xs: impl Iterator<Item = f64>) -> (f64, f64) {
    xs.filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        })
}

fn alert_rects(svg: &mut String, s: &PlotSeries<'_>, frame: &Frame) {
    for &(start, end) in &s.alerts {
        let (x1, x2) = (frame.x(start), frame.x(end));
        let _ = writeln!(
            svg,
            "<rect class=\"alert\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            fmt(x1),
            fmt(frame.y0),
            fmt((x2 - x1).max(1.0)),
            fmt(frame.height)
        );
    }
}

/// mean ± threshold × stddev, filled for `both`; for a one-sided direction,
/// the edge on the bad side as a dashed line.
fn band(svg: &mut String, s: &PlotSeries<'_>, frame: &Frame) {
    let edge = |sign: f64| move |p: &PlotPoint| Some(p.mean? + sign * s.threshold * p.stddev?);
    match s.direction {
        Direction::Both => {
            let mut d = String::new();
            for run in runs(s.points, |p| p.mean.is_some() && p.stddev.is_some()) {
                let upper = polyline(run, frame, edge(1.0));
                let lower: Vec<PlotPoint> = run.iter().rev().copied().collect();
                let lower = polyline(&lower, frame, edge(-1.0));
                d.push_str(&upper);
                d.push_str(&lower.replacen('M', "L", 1));
                d.push('Z');
            }
            path(svg, "band", &d);
        }
        Direction::LowerIsWorse => path(svg, "bandline", &polyline(s.points, frame, edge(-1.0))),
        Direction::HigherIsWorse => path(svg, "bandline", &polyline(s.points, frame, edge(1.0))),
    }
}

fn thresholds(svg: &mut String, s: &PlotSeries<'_>, frame: &Frame) {
    let levels: &[f64] = match s.direction {
        Direction::Both => &[1.0, -1.0],
        Direction::LowerIsWorse => &[-1.0],
        Direction::HigherIsWorse => &[1.0],
    };
    for sign in levels {
        let y = frame.y(sign * s.threshold);
        let _ = writeln!(
            svg,
            "<line class=\"threshold\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>",
            fmt(frame.x0),
            fmt(frame.x0 + frame.width),
            y = fmt(y)
        );
    }
}

fn labels(svg: &mut String, s: &PlotSeries<'_>, values: &Frame, zs: &Frame) {
    let text = |svg: &mut String, x: f64, y: f64, anchor: &str, body: &str| {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">",
            fmt(x),
            fmt(y)
        );
        escape_into(svg, body);
        svg.push_str("</text>\n");
    };
    let number = |x: f64| format!("{:.4}", x);
    let right = values.x0 - 4.0;
    text(svg, right, values.y0 + 10.0, "end", &number(values.hi));
    text(
        svg,
        right,
        values.y0 + values.height,
        "end",
        &number(values.lo),
    );
    text(svg, right, zs.y0 + 10.0, "end", &format!("z {:+.0}", zs.hi));
    text(
        svg,
        right,
        zs.y0 + zs.height,
        "end",
        &format!("z {:+.0}", zs.lo),
    );
    let bottom = zs.y0 + zs.height + 14.0;
    let start = crate::replay::format_ms(values.t_min);
    let end = crate::replay::format_ms(values.t_max);
    text(svg, values.x0, bottom, "start", &start);
    text(svg, values.x0 + values.width, bottom, "end", &end);
    let legend = format!(
        "value, mean, band mean \u{b1} {} \u{d7} stddev; z-score with threshold; alerts shaded",
        s.threshold
    );
    text(
        svg,
        values.x0 + values.width / 2.0,
        bottom,
        "middle",
        &legend,
    );
}

/// The stretches of consecutive points that satisfy `keep`.
fn runs(points: &[PlotPoint], keep: impl Fn(&PlotPoint) -> bool) -> Vec<&[PlotPoint]> {
    points
        .split(|p| !keep(p))
        .filter(|run| !run.is_empty())
        .collect()
}

/// Path data through the points where `y` is defined, broken where it is
/// not.
fn polyline(points: &[PlotPoint], frame: &Frame, y: impl Fn(&PlotPoint) -> Option<f64>) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for p in points {
        match y(p).filter(|v| !v.is_nan()) {
            Some(v) => {
                let _ = write!(
                    d,
                    "{}{},{}",
                    if pen_down { 'L' } else { 'M' },
                    fmt(frame.x(p.at_ms)),
                    fmt(frame.y(v))
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d
}

fn path(svg: &mut String, class: &str, d: &str) {
    if d.is_empty() {
        return;
    }
    let _ = writeln!(svg, "<path class=\"{class}\" d=\"{d}\"/>");
}

/// One decimal: a tenth of a unit is finer than any screen shows.
fn fmt(x: f64) -> String {
    let r = (x * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// Appends `text` with the five XML special characters escaped.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(i: i64, z: Option<f64>) -> PlotPoint {
        PlotPoint {
            at_ms: i * 1000,
            value: 10.0 + z.unwrap_or(0.0),
            zscore: z,
            mean: z.map(|_| 10.0),
            stddev: z.map(|_| 1.0),
        }
    }

    #[test]
    fn thinning_keeps_the_bound_and_the_spike() {
        let mut t = Thinned::new(8);
        for i in 0..1000 {
            let z = if i == 637 { 50.0 } else { (i % 3) as f64 };
            t.push(point(i, Some(z)));
        }
        assert!(t.points().len() <= 8);
        assert!(t.points().iter().any(|p| p.zscore == Some(50.0)));
    }

    #[test]
    fn labels_are_escaped() {
        let points: Vec<PlotPoint> = (0..5).map(|i| point(i, Some(0.5))).collect();
        let s = PlotSeries {
            title: "acc{model=\"<a&b>\"}",
            points: &points,
            alerts: vec![],
            threshold: 3.0,
            direction: Direction::Both,
        };
        let svg = render(&[s], &Layout::default());
        assert!(
            svg.contains("acc{model=&quot;&lt;a&amp;b&gt;&quot;}"),
            "{svg}"
        );
        assert!(!svg.contains("<a&b>"));
    }

    #[test]
    fn learning_breaks_the_band_and_one_sided_draws_a_line() {
        let points = [point(0, None), point(1, Some(1.0)), point(2, Some(-1.0))];
        let s = PlotSeries {
            title: "x",
            points: &points,
            alerts: vec![(1000, 2000)],
            threshold: 3.0,
            direction: Direction::LowerIsWorse,
        };
        let svg = render(&[s], &Layout::small());
        assert!(svg.contains("class=\"bandline\""));
        assert!(!svg.contains("class=\"band\""));
        assert_eq!(svg.matches("class=\"alert\"").count(), 2);
        assert_eq!(svg.matches("class=\"threshold\"").count(), 1);
    }
}
