//! The live page itself: `/` (the page, with the board in it and a few lines of script that
//! fetch `/board` each second), `/board` (the board as HTML: charts as inline SVG whose
//! `polyline`s hold the points, and the gateways' table), `/board.json` (the same data).
//! Drawn here, server-side: no script library, no CDN, nothing for the browser to fetch but
//! the page (a classroom may be offline).

use super::{Band, Board, LiveBoard, Point};
use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The page's routes; a request that names the port by a domain (a web page rebinding its
/// own name to 127.0.0.1) is refused, and no CORS header lets another origin read it.
pub fn router(live: LiveBoard) -> axum::Router {
    axum::Router::new()
        .route(
            "/",
            get(|State(live): State<LiveBoard>| async move { Html(page(&live.board())) }),
        )
        .route(
            "/board",
            get(|State(live): State<LiveBoard>| async move { Html(render(&live.board())) }),
        )
        .route(
            "/board.json",
            get(|State(live): State<LiveBoard>| async move {
                axum::Json(live.board()).into_response()
            }),
        )
        .with_state(live)
        .layer(axum::middleware::from_fn_with_state(
            common::guard::Names(&[]),
            common::guard::local_host_only,
        ))
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 56.0;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole page: the board as it is now, and the script that refreshes it.
pub fn page(b: &Board) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>scalelab live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<noscript><meta http-equiv="refresh" content="2"></noscript>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1em 2em; color: #222; }}
h1 {{ font-size: 1.3em; margin: 0 0 .2em 0; }}
.step {{ font-size: 1.1em; margin: .2em 0 .6em 0; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: .6em 1.2em; }}
figure {{ margin: 0; }} figcaption {{ font-weight: 600; font-size: .95em; }}
svg {{ width: 100%; height: auto; background: #fcfcfc; border: 1px solid #ddd; }}
.legend span {{ margin-right: 1em; font-size: .85em; }}
table {{ border-collapse: collapse; margin: .6em 0; font-size: .9em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .2em .8em; text-align: right; }}
td:first-child, th:first-child, td.state {{ text-align: left; }}
ol.steps {{ font-size: .85em; columns: 3; margin: 0 0 .6em 0; }} ol.steps .now {{ font-weight: 700; }}
ol.steps .at {{ color: #777; }} ul.notes {{ font-size: .85em; margin: 0 0 .6em 0; color: #444; }}
.gone {{ color: #999; }} .draining {{ color: #b36b00; }} .out {{ color: #c00; }}
</style></head>
<body data-updates="0"><h1>scalelab, live</h1>
<div id="board">{}</div>
<script>
(function () {{
  var n = 0;
  function tick() {{
    fetch('board').then(function (r) {{ return r.ok ? r.text() : Promise.reject(r.status); }})
      .then(function (html) {{
        document.getElementById('board').innerHTML = html;
        document.body.dataset.updates = String(++n);
        delete document.body.dataset.offline;
      }})
      .catch(function () {{ document.body.dataset.offline = '1'; }});
  }}
  setInterval(tick, 1000);
}})();
</script></body></html>"#,
        render(b)
    )
}

/// The page as it was when the command ended: the same board, no script (a file to open
/// and project after the run).
pub fn snapshot(b: &Board) -> String {
    let live = page(b);
    match (live.find("<script>"), live.find("</script>")) {
        (Some(a), Some(z)) => format!("{}{}", &live[..a], &live[z + "</script>".len()..]),
        _ => live,
    }
}

/// A series to draw: its name, and its value at each point (`None`: a gap).
type Series = (String, Vec<(f64, Option<f64>)>);

/// A value that is not a number (a gauge read as NaN) is a gap, not a broken line.
fn series(points: &[Point], name: &str, f: impl Fn(&Point) -> Option<f64>) -> Series {
    (
        name.to_string(),
        points
            .iter()
            .map(|p| (p.t, f(p).filter(|v| v.is_finite())))
            .collect(),
    )
}

/// The board: what runs now, then every chart on the same time axis, then the gateways.
pub fn render(b: &Board) -> String {
    let mut out = String::new();
    let last = b.points.last();
    let _ = write!(
        out,
        r#"<div class="step" id="step">{}</div>"#,
        esc(b.step.as_deref().unwrap_or("waiting for a lab command"))
    );
    // The protocol's steps so far, with when each began: the bands' numbers on the charts.
    let steps: Vec<&Band> = b.bands.iter().filter(|x| x.kind == "step").collect();
    if !steps.is_empty() {
        out.push_str(r#"<ol class="steps" id="steps">"#);
        for band in steps {
            let now = if band.to.is_none() {
                r#" class="now""#
            } else {
                ""
            };
            let _ = write!(
                out,
                "<li{now}>{} <span class=\"at\">at {:.0} s{}</span></li>",
                esc(band.label.split_once("] ").map_or(&band.label, |(_, l)| l)),
                band.from,
                band.to
                    .map_or(String::new(), |to| format!(", {:.0} s", to - band.from))
            );
        }
        out.push_str("</ol>");
    }
    // The moments worth a word: the autoscaler's decisions, a repair (the dashed lines).
    if !b.notes.is_empty() {
        out.push_str(r#"<ul class="notes" id="notes">"#);
        for (t, what) in b.notes.iter().rev().take(12) {
            let _ = write!(out, "<li>at {t:.0} s: {}</li>", esc(what));
        }
        out.push_str("</ul>");
    }
    let span = (
        b.points.first().map_or(0.0, |p| p.t),
        last.map_or(1.0, |p| p.t.max(1.0)),
    );
    let gateways: BTreeSet<String> = b
        .points
        .iter()
        .flat_map(|p| p.gateways.keys().cloned())
        .collect();
    let per_gateway = |f: &dyn Fn(&super::Gateway) -> Option<f64>| -> Vec<Series> {
        gateways
            .iter()
            .map(|g| series(&b.points, g, |p| p.gateways.get(g).and_then(f)))
            .collect()
    };
    let pts = &b.points;
    let charts: Vec<(&str, &str, Vec<Series>)> = vec![
        (
            "answers",
            "Answers per second, by status",
            ["2xx", "4xx", "5xx"]
                .iter()
                .map(|c| series(pts, c, |p| Some(p.answers.get(*c).copied().unwrap_or(0.0))))
                .collect(),
        ),
        (
            "latency",
            "Latency at the load balancer, last second (ms)",
            vec![
                series(pts, "p50", |p| p.p50_ms),
                series(pts, "p95", |p| p.p95_ms),
                series(pts, "p99", |p| p.p99_ms),
            ],
        ),
        (
            "gateway-rps",
            "Requests per second, by gateway",
            per_gateway(&|g| g.rps.filter(|_| g.state != "gone")),
        ),
        (
            "gateway-queued",
            "Waiting for a slot in each gateway",
            per_gateway(&|g| g.queued),
        ),
        (
            "gateway-in-flight",
            "In flight (holding a slot), by gateway",
            per_gateway(&|g| g.in_flight),
        ),
        (
            "turned-away",
            "Turned away (503) per second, by gateway",
            per_gateway(&|g| g.turned_away),
        ),
        (
            "rotation",
            "Gateways in rotation",
            vec![series(pts, "in rotation", |p| {
                Some(
                    p.gateways
                        .values()
                        .filter(|g| g.state == "in rotation")
                        .count() as f64,
                )
            })],
        ),
        (
            "hit-ratio",
            "Cache hit ratio",
            vec![series(pts, "hits / (hits + misses)", |p| p.hit_ratio)],
        ),
        (
            "pool",
            "The microservice's database pool",
            vec![
                series(pts, "in use", |p| p.pool_in_use),
                series(pts, "waiting", |p| p.pool_waiting),
            ],
        ),
        (
            "queue",
            "The job queue",
            vec![
                series(pts, "not yet delivered", |p| p.queue_waiting),
                series(pts, "delivered, not acknowledged", |p| p.queue_unacked),
                series(pts, "done per second", |p| p.jobs_done),
                series(pts, "dead-lettered (in all)", |p| p.jobs_dead),
            ],
        ),
        (
            "cpu",
            "CPU busy, share of the machine (%)",
            vec![
                series(pts, "machine", |p| p.cpu_busy.map(|v| v * 100.0)),
                series(pts, "load generators", |p| {
                    p.generator_cpu.map(|v| v * 100.0)
                }),
            ],
        ),
    ];
    out.push_str(r#"<div class="charts">"#);
    for (id, title, lines) in &charts {
        out.push_str(&chart(id, title, lines, &b.bands, &b.notes, span));
    }
    out.push_str("</div>");
    out.push_str(&table(last));
    out
}

/// One chart: its bands (steps, the fault's window), its notes, its lines.
fn chart(
    id: &str,
    title: &str,
    lines: &[Series],
    bands: &[Band],
    notes: &[(f64, String)],
    (t0, t1): (f64, f64),
) -> String {
    let top = lines
        .iter()
        .flat_map(|(_, v)| v.iter().filter_map(|(_, y)| *y))
        .fold(0.0_f64, f64::max);
    let top = if top <= 0.0 { 1.0 } else { nice(top) };
    let width = (t1 - t0).max(1.0);
    let x = |t: f64| LEFT + (t - t0).max(0.0) / width * (WIDTH - LEFT - 8.0);
    let y = |v: f64| HEIGHT - 18.0 - (v / top).clamp(0.0, 1.05) * (HEIGHT - 30.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure id="{id}"><figcaption>{}</figcaption><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    for (i, band) in bands.iter().enumerate() {
        let (from, to) = (x(band.from), x(band.to.unwrap_or(t1)));
        let fill = if band.kind == "fault" {
            "rgba(214,39,40,0.16)"
        } else if i % 2 == 0 {
            "rgba(31,119,180,0.07)"
        } else {
            "rgba(31,119,180,0.0)"
        };
        let _ = write!(
            s,
            r#"<rect class="band {}" x="{from:.1}" y="4" width="{:.1}" height="{:.1}" fill="{fill}"><title>{}</title></rect>"#,
            band.kind,
            (to - from).max(1.0),
            HEIGHT - 22.0,
            esc(&band.label)
        );
        // A step is numbered on the chart (named in the list of steps above the charts), a
        // fault's window named.
        if band.kind == "step" {
            let number = band
                .label
                .strip_prefix('[')
                .and_then(|l| l.split('/').next())
                .unwrap_or("");
            let _ = write!(
                s,
                r##"<text class="band-label" x="{:.1}" y="14" font-size="10" fill="#1f5f9f">{}</text>"##,
                from + 2.0,
                esc(number)
            );
        }
        if band.kind == "fault" {
            let _ = write!(
                s,
                r##"<text class="band-label" x="{:.1}" y="14" font-size="10" fill="#a00">{}</text>"##,
                from + 3.0,
                esc(&band.label)
            );
        }
    }
    for (t, what) in notes.iter().filter(|(t, _)| *t >= t0) {
        let _ = write!(
            s,
            r##"<line class="note" x1="{0:.1}" x2="{0:.1}" y1="4" y2="{1:.1}" stroke="#555" stroke-dasharray="3,3"><title>{2}</title></line>"##,
            x(*t),
            HEIGHT - 18.0,
            esc(what)
        );
    }
    // Axes: 0 and the top value, the time span.
    let (right, base) = (WIDTH - 8.0, y(0.0));
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{right:.1}" y1="{base:.1}" y2="{base:.1}" stroke="#999"/><text x="{0:.1}" y="{1:.1}" font-size="10" text-anchor="end">0</text><text x="{0:.1}" y="16" font-size="10" text-anchor="end">{2}</text><text x="{LEFT}" y="{3:.1}" font-size="10">{t0:.0} s</text><text x="{right:.1}" y="{3:.1}" font-size="10" text-anchor="end">{t1:.0} s</text>"##,
        LEFT - 4.0,
        base + 3.0,
        short(top),
        HEIGHT - 4.0,
    );
    let mut legend = String::new();
    for (i, (name, values)) in lines.iter().enumerate() {
        // Status classes in the colours everyone reads them in.
        let color = match name.as_str() {
            "2xx" => "#2ca02c",
            "4xx" => "#ff7f0e",
            "5xx" => "#d62728",
            _ => PALETTE[i % PALETTE.len()],
        };
        // A gap (no figure that second) ends one polyline and starts the next.
        let mut runs: Vec<Vec<String>> = vec![Vec::new()];
        for (t, v) in values {
            match v {
                Some(v) => {
                    runs.last_mut()
                        .expect("one run")
                        .push(format!("{:.1},{:.1}", x(*t), y(*v)))
                }
                None if !runs.last().expect("one run").is_empty() => runs.push(Vec::new()),
                None => {}
            }
        }
        for run in runs.iter().filter(|r| !r.is_empty()) {
            let _ = write!(
                s,
                r#"<polyline data-series="{}" data-points="{}" points="{}" fill="none" stroke="{color}" stroke-width="1.6"/>"#,
                esc(name),
                run.len(),
                run.join(" ")
            );
        }
        let now = values.last().and_then(|(_, v)| *v);
        let _ = write!(
            legend,
            r#"<span style="color:{color}">■ {} {}</span>"#,
            esc(name),
            now.map_or("–".to_string(), short)
        );
    }
    let _ = write!(s, r#"</svg><div class="legend">{legend}</div></figure>"#);
    s
}

/// The next round number at or above `v` (1, 2, 5 × a power of ten).
fn nice(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The gateways now: state and figures of the last second.
fn table(last: Option<&Point>) -> String {
    let mut s = String::from(
        r#"<table id="gateways"><tr><th>gateway</th><th>state</th><th>req/s</th><th>in flight</th><th>waiting</th><th>turned away/s</th></tr>"#,
    );
    let opt = |v: Option<f64>| v.filter(|x| x.is_finite()).map_or("–".to_string(), short);
    for (addr, g) in last.iter().flat_map(|p| p.gateways.iter()) {
        let class = match g.state.as_str() {
            "gone" => "gone",
            "draining" => "draining",
            "out of rotation" => "out",
            _ => "",
        };
        let _ = write!(
            s,
            r#"<tr class="{class}" data-gateway="{0}" data-state="{1}"><td>{0}</td><td class="state">{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td></tr>"#,
            esc(addr),
            esc(&g.state),
            opt(g.rps),
            opt(g.in_flight),
            opt(g.queued),
            opt(g.turned_away)
        );
    }
    s.push_str("</table>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_draws_a_polyline_per_series_with_its_points_and_escapes_names() {
        let mut b = Board::default();
        for t in 0..5 {
            let mut p = Point {
                t: t as f64,
                p50_ms: (t != 2).then_some(10.0),
                ..Point::default()
            };
            p.answers.insert("2xx".into(), 100.0 + t as f64);
            b.points.push(p);
        }
        b.step = Some("[1/2] <script>".into());
        b.notes.push((1.0, "autoscaler: <img src=x>".into()));
        b.points[4].gateways.insert(
            "<b>gw</b>".into(),
            super::super::Gateway {
                state: "in rotation".into(),
                rps: Some(f64::NAN),
                ..Default::default()
            },
        );
        let html = render(&b);
        // Outside text is escaped wherever it lands: the step, a note, a gateway's name.
        for raw in ["<script>", "<img src=x>", "<b>gw</b>"] {
            assert!(!html.contains(raw), "{raw} unescaped");
        }
        assert!(html.contains("&lt;img src=x&gt;") && html.contains("&lt;b&gt;gw&lt;/b&gt;"));
        // A NaN is a gap, never a "NaN" in a polyline or a cell.
        assert!(!html.contains("NaN"), "{html}");
        assert!(
            html.contains(r#"data-series="2xx" data-points="5""#),
            "{html}"
        );
        // A second without a figure splits the line: two runs of p50.
        assert_eq!(html.matches(r#"data-series="p50""#).count(), 2, "{html}");
        assert!(html.contains("[1/2] &lt;script&gt;"));
        let page = page(&b);
        assert!(page.contains("setInterval(tick, 1000)") && page.contains("id=\"board\""));
    }

    #[test]
    fn round_tops() {
        assert_eq!(nice(0.7), 1.0);
        assert_eq!(nice(130.0), 200.0);
        assert_eq!(nice(4.0), 5.0);
        assert_eq!(nice(1.0), 1.0);
    }
}
