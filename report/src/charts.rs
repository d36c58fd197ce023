//! Line and bar charts, each written as PNG and SVG of the same size.

use anyhow::{anyhow, Context};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

pub const SIZE: (u32, u32) = (900, 460);
const FONT: &str = "sans-serif";

/// Loads the font the charts' text is drawn in: DejaVu Sans, embedded in the binary at build
/// time (the `dejavu` crate), so no machine needs a system font; `REPORT_FONT` names another
/// .ttf. Later calls reuse the first outcome.
pub fn init_font() -> anyhow::Result<()> {
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| load_font().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn load_font() -> anyhow::Result<()> {
    let (bytes, from): (&'static [u8], String) = match std::env::var("REPORT_FONT") {
        Ok(path) if !path.is_empty() => (
            // plotters keeps the font for the life of the process: leaked once, not per report.
            Box::leak(
                std::fs::read(&path)
                    .with_context(|| format!("REPORT_FONT: cannot read {path}"))?
                    .into_boxed_slice(),
            ),
            path,
        ),
        _ => (dejavu::sans::regular(), "the embedded DejaVu Sans".into()),
    };
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{from} is not a usable TrueType font"))?;
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Colours for series that have none by their meaning.
const PALETTE: [RGBColor; 10] = [
    RGBColor(41, 128, 185),
    RGBColor(230, 126, 34),
    RGBColor(142, 68, 173),
    RGBColor(39, 174, 96),
    RGBColor(192, 57, 43),
    RGBColor(44, 62, 80),
    RGBColor(22, 160, 133),
    RGBColor(241, 196, 15),
    RGBColor(127, 140, 141),
    RGBColor(211, 84, 0),
];

/// A fixed colour per series name, so a scenario looks the same in every chart.
pub fn color_for(name: &str) -> RGBColor {
    named_color(name).unwrap_or_else(|| {
        let h = name
            .to_ascii_lowercase()
            .bytes()
            .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
        PALETTE[h % PALETTE.len()]
    })
}

/// The colour a series has by its meaning (a percentile, a status class, a run kind).
fn named_color(name: &str) -> Option<RGBColor> {
    let n = name.to_ascii_lowercase();
    // Series that share a chart and must never share a colour.
    const NAMED: [(&str, RGBColor); 18] = [
        ("p50", RGBColor(41, 128, 185)),
        ("p95", RGBColor(230, 126, 34)),
        ("p99", RGBColor(142, 68, 173)),
        ("average", RGBColor(39, 174, 96)),
        ("requests per second", RGBColor(39, 174, 96)),
        ("errors", RGBColor(192, 57, 43)),
        ("users", RGBColor(127, 140, 141)),
        ("waiting", RGBColor(44, 62, 80)),
        ("pending", RGBColor(211, 84, 0)),
        ("in progress", RGBColor(22, 160, 133)),
        ("burst", RGBColor(192, 57, 43)),
        // Answers by status class (the Faults section) and the rotation beside them.
        ("2xx", RGBColor(39, 174, 96)),
        ("4xx", RGBColor(241, 196, 15)),
        ("5xx", RGBColor(192, 57, 43)),
        ("none", RGBColor(44, 62, 80)),
        ("gateways in rotation", RGBColor(41, 128, 185)),
        // What a load model sent against what came back (lab 15).
        ("requests sent", RGBColor(142, 68, 173)),
        ("requests answered", RGBColor(39, 174, 96)),
    ];
    if let Some((_, c)) = NAMED.iter().find(|(k, _)| n.starts_with(k)) {
        return Some(*c);
    }
    if n.starts_with("ramp") {
        return Some(RGBColor(41, 128, 185));
    }
    let three = n.contains("3 gateway") || n.contains("3gw");
    if n.contains("miss") {
        Some(if three {
            RGBColor(230, 126, 34)
        } else {
            RGBColor(192, 57, 43)
        })
    } else if n.contains("hit") {
        Some(if three {
            RGBColor(22, 160, 133)
        } else {
            RGBColor(41, 128, 185)
        })
    } else {
        None
    }
}

/// One colour per series of a chart: each its own [`color_for`], except that a series whose
/// colour an earlier one already took gets the first colour no series of the chart uses.
pub fn colors_for<'n>(names: impl IntoIterator<Item = &'n str>) -> Vec<RGBColor> {
    let names: Vec<&str> = names.into_iter().collect();
    let wanted: Vec<RGBColor> = names.iter().map(|n| color_for(n)).collect();
    // Colours that series named for their meaning keep: the others stay off them.
    let mut used: Vec<RGBColor> = Vec::new();
    let reserved: Vec<RGBColor> = names.iter().filter_map(|n| named_color(n)).collect();
    wanted
        .iter()
        .zip(&names)
        .map(|(c, n)| {
            let mine = named_color(n).is_some();
            let taken = used.contains(c) || (!mine && reserved.contains(c));
            let c = if taken {
                PALETTE
                    .iter()
                    .copied()
                    .find(|s| !used.contains(s) && !wanted.contains(s))
                    .or_else(|| PALETTE.iter().copied().find(|s| !used.contains(s)))
                    .unwrap_or(*c)
            } else {
                *c
            };
            used.push(c);
            c
        })
        .collect()
}

pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// A horizontal reference line (value, label), e.g. the SLA.
    pub reference: Option<(f64, String)>,
    /// Logarithmic y axis (latency spanning orders of magnitude).
    pub log_y: bool,
    /// A point to mark (x, y, label), e.g. the knee of a load curve.
    pub marker: Option<(f64, f64, String)>,
    /// A shaded span of x (from, to, label), e.g. a fault's window.
    pub shade: Option<(f64, f64, String)>,
    /// A step in x wider than this is drawn as a gap, not a line across it (seconds in
    /// which a sampled service did not answer).
    pub gap: Option<f64>,
    /// Moments to mark with a vertical dashed line (x, label): a scale, a fault, all users
    /// started.
    pub events: Vec<(f64, String)>,
}

impl<'a> LineChart<'a> {
    pub fn new(
        title: &'a str,
        x_label: &'a str,
        y_label: &'a str,
        series: Vec<(String, Vec<(f64, f64)>)>,
    ) -> Self {
        Self {
            title,
            x_label,
            y_label,
            series,
            reference: None,
            log_y: false,
            marker: None,
            shade: None,
            gap: None,
            events: Vec::new(),
        }
    }

    pub fn reference(mut self, reference: Option<(f64, String)>) -> Self {
        self.reference = reference;
        self
    }

    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    pub fn events(mut self, events: Vec<(f64, String)>) -> Self {
        self.events = events;
        self
    }

    pub fn marker(mut self, marker: Option<(f64, f64, String)>) -> Self {
        self.marker = marker;
        self
    }
}

pub struct BarChart<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub bars: Vec<(String, f64)>,
}

/// Writes `<base>.png` and `<base>.svg`.
pub fn write_line(base: &Path, chart: &LineChart) -> anyhow::Result<()> {
    let png = base.with_extension("png");
    let svg = base.with_extension("svg");
    draw_line(BitMapBackend::new(&png, SIZE).into_drawing_area(), chart)?;
    draw_line(SVGBackend::new(&svg, SIZE).into_drawing_area(), chart)
}

pub fn write_bars(base: &Path, chart: &BarChart) -> anyhow::Result<()> {
    let png = base.with_extension("png");
    let svg = base.with_extension("svg");
    draw_bars(BitMapBackend::new(&png, SIZE).into_drawing_area(), chart)?;
    draw_bars(SVGBackend::new(&svg, SIZE).into_drawing_area(), chart)
}

fn draw_line<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    c: &LineChart,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let points = c.series.iter().flat_map(|s| s.1.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0_f64, f64::max);
    let x_min = points.clone().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_min = if x_min.is_finite() && x_min < x_max {
        x_min
    } else {
        0.0
    };
    let mut y_max = points.clone().map(|p| p.1).fold(0.0_f64, f64::max);
    if let Some((r, _)) = &c.reference {
        y_max = y_max.max(*r);
    }
    let y_max = if y_max <= 0.0 { 1.0 } else { y_max * 1.1 };
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(c.title, (FONT, 22))
        .margin(14)
        .x_label_area_size(45)
        .y_label_area_size(70);
    if c.log_y {
        let y_min = points
            .map(|p| p.1)
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let y_min = if y_min.is_finite() { y_min * 0.8 } else { 0.1 };
        let mut chart = builder
            .build_cartesian_2d(x_min..x_max, (y_min..y_max).log_scale())
            .map_err(err)?;
        plot_lines(&mut chart, c, x_min..x_max, (y_min, y_max))?;
    } else {
        let mut chart = builder
            .build_cartesian_2d(x_min..x_max, 0.0..y_max)
            .map_err(err)?;
        plot_lines(&mut chart, c, x_min..x_max, (0.0, y_max))?;
    }
    root.present().map_err(err)
}

/// The runs of points between steps in x wider than `gap` (one run without it).
fn split_at_gaps(pts: &[(f64, f64)], gap: Option<f64>) -> Vec<&[(f64, f64)]> {
    let Some(gap) = gap else {
        return vec![pts];
    };
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..pts.len() {
        if pts[i].0 - pts[i - 1].0 > gap {
            out.push(&pts[start..i]);
            start = i;
        }
    }
    out.push(&pts[start..]);
    out
}

/// Axes, lines, the reference line and the legend, on linear or logarithmic y.
fn plot_lines<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    c: &LineChart,
    x: std::ops::Range<f64>,
    y: (f64, f64),
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(c.x_label)
        .y_desc(c.y_label)
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    let line = |color: RGBColor| {
        move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
    };
    if let Some((from, to, label)) = &c.shade {
        let grey = RGBColor(200, 200, 200);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(*from, y.0), (*to, y.1)],
                grey.mix(0.5).filled(),
            )))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], grey.filled()));
    }
    let colors = colors_for(c.series.iter().map(|(n, _)| n.as_str()));
    for ((name, pts), color) in c.series.iter().zip(colors) {
        // Zero has no place on a log axis: such points are left out.
        let pts: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(|p| !c.log_y || p.1 > 0.0)
            .collect();
        let segments = split_at_gaps(&pts, c.gap);
        for (k, segment) in segments.iter().enumerate() {
            let drawn = chart
                .draw_series(LineSeries::new(
                    segment.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?;
            if k == 0 {
                drawn.label(name.as_str()).legend(line(color));
            }
        }
    }
    const EVENT_COLORS: [RGBColor; 3] = [
        RGBColor(90, 90, 90),
        RGBColor(155, 89, 182),
        RGBColor(26, 188, 156),
    ];
    let mut labelled: Vec<&str> = Vec::new();
    for (ex, label) in &c.events {
        // One legend entry and one colour per kind of event.
        let kind = labelled
            .iter()
            .position(|l| *l == label.as_str())
            .unwrap_or(labelled.len());
        let color = EVENT_COLORS[kind % EVENT_COLORS.len()];
        let drawn = chart
            .draw_series(DashedLineSeries::new(
                vec![(*ex, y.0), (*ex, y.1)],
                4,
                4,
                color.stroke_width(1),
            ))
            .map_err(err)?;
        if kind == labelled.len() {
            labelled.push(label);
            drawn.label(label.as_str()).legend(line(color));
        }
    }
    if let Some((value, label)) = &c.reference {
        let red = RGBColor(200, 0, 0);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x.start, *value), (x.end, *value)],
                8,
                5,
                red.stroke_width(2),
            ))
            .map_err(err)?
            .label(label.as_str())
            .legend(line(red));
    }
    if let Some((mx, my, label)) = &c.marker {
        chart
            .draw_series(std::iter::once(Circle::new(
                (*mx, *my),
                8,
                BLACK.stroke_width(3),
            )))
            .map_err(err)?
            .label(label.as_str())
            .legend(|(x, y)| Circle::new((x + 10, y), 5, BLACK.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)
}

fn draw_bars<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, c: &BarChart) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let n = c.bars.len().max(1);
    let y_max = c.bars.iter().map(|b| b.1).fold(0.0_f64, f64::max);
    let y_max = if y_max <= 0.0 { 1.0 } else { y_max * 1.15 };
    let names: Vec<String> = c.bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(c.title, (FONT, 22))
        .margin(14)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n as f64, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(c.y_label)
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    let colors = colors_for(c.bars.iter().map(|(n, _)| n.as_str()));
    for (i, ((_, value), color)) in c.bars.iter().zip(colors).enumerate() {
        let x = i as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, *value)],
                color.filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format_value(*value),
                (x + 0.38, *value + y_max * 0.02),
                (FONT, 14),
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)
}

pub fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_of_one_chart_never_share_a_colour() {
        let names = [
            "requests waiting for a database connection",
            "open database connections",
            "microservice 503s per second",
            "microservice requests per second",
            "2xx per second",
        ];
        let colors = colors_for(names);
        for (i, a) in colors.iter().enumerate() {
            assert!(!colors[i + 1..].contains(a), "{names:?}: {colors:?}");
        }
        // A named series keeps its own colour.
        assert_eq!(colors[4], color_for("2xx per second"));
    }

    #[test]
    fn a_missing_sample_is_a_gap_not_a_line_across_it() {
        let pts = [(0.0, 1.0), (1.0, 1.0), (5.0, 9.0), (6.0, 9.0)];
        assert_eq!(split_at_gaps(&pts, None).len(), 1);
        let parts = split_at_gaps(&pts, Some(1.5));
        assert_eq!(parts, vec![&pts[..2], &pts[2..]]);
        assert_eq!(split_at_gaps(&[], Some(1.5)), vec![&[][..]]);
    }
}
