//! The report in the forms other tools take: `summary.html`, one self-contained file (the
//! summary's text and tables, every chart inlined as SVG; no link, script or font to fetch,
//! so it opens offline in any browser), and CSV for spreadsheets: `runs.csv`, one row per
//! run, and `csv/<run>.csv`, each run's per-second series. Units are in the column names.

use crate::runs::Run;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `summary.html` from the summary's Markdown, its `![name](graphs/name.png)` charts replaced
/// by the SVG written beside each PNG.
///
/// The Markdown holds strings from run folders anyone may hand over (run ids, commits,
/// settings): any HTML in it is shown as text, never passed through. Only the charts are
/// HTML, put in after the Markdown is rendered, at places marked with a token no run can
/// guess.
pub fn html(out: &Path, markdown: &str) -> anyhow::Result<PathBuf> {
    let nonce = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(markdown.len());
        h.finish()
    };
    let mut figures: Vec<String> = Vec::new();
    let mut inlined = String::with_capacity(markdown.len());
    for line in markdown.lines() {
        match chart_of(line) {
            Some(name) => {
                // The path the chart was written at (charts.rs: the name, extension replaced).
                let path = out.join("graphs").join(name).with_extension("svg");
                let Ok(svg) = std::fs::read_to_string(&path) else {
                    inlined.push_str(&format!("*(chart {name}: {} missing)*\n", path.display()));
                    continue;
                };
                let svg = svg.trim_start_matches(|c| c != '<');
                let svg = match svg.strip_prefix("<?xml") {
                    Some(rest) => rest.split_once("?>").map_or(rest, |(_, r)| r),
                    None => svg,
                };
                let _ = writeln!(inlined, "\nscalelab-figure-{nonce:x}-{}\n", figures.len());
                figures.push(format!(
                    "<figure role=\"img\" aria-label=\"{}\">{}</figure>",
                    escape(name),
                    svg.trim()
                ));
            }
            None => {
                inlined.push_str(line);
                inlined.push('\n');
            }
        }
    }
    let options = pulldown_cmark::Options::ENABLE_TABLES;
    let mut body = String::new();
    // A destination beside the report is kept; any other becomes `instead`.
    fn only_beside<'a>(
        url: pulldown_cmark::CowStr<'a>,
        instead: &'static str,
    ) -> pulldown_cmark::CowStr<'a> {
        if beside(&url) {
            url
        } else {
            instead.into()
        }
    }
    pulldown_cmark::html::push_html(
        &mut body,
        pulldown_cmark::Parser::new_ext(&inlined, options).map(|event| {
            use pulldown_cmark::{Event, Tag};
            match event {
                Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
                // A link or an image only to a file beside the report: no `javascript:`,
                // and no picture fetched from someone's server when the teacher opens it.
                Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }) => Event::Start(Tag::Link {
                    link_type,
                    dest_url: only_beside(dest_url, "#"),
                    title,
                    id,
                }),
                Event::Start(Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                }) => Event::Start(Tag::Image {
                    link_type,
                    dest_url: only_beside(dest_url, ""),
                    title,
                    id,
                }),
                other => other,
            }
        }),
    );
    for (i, figure) in figures.iter().enumerate() {
        body = body.replace(&format!("<p>scalelab-figure-{nonce:x}-{i}</p>"), figure);
    }
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>scalelab report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    );
    let path = out.join("summary.html");
    std::fs::write(&path, page)?;
    Ok(path)
}

/// Whether a link's target is a file beside the report (a relative path: no scheme, no
/// host).
fn beside(target: &str) -> bool {
    let before_path = target.split(['/', '?', '#']).next().unwrap_or("");
    !before_path.contains(':') && !target.starts_with("//") && !target.starts_with('\\')
}

/// Text made safe inside HTML and its attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.45;color:#222}\
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem;display:block;overflow-x:auto}\
th,td{border:1px solid #ccc;padding:.25rem .5rem}th{background:#f3f3f3}td:first-child{white-space:nowrap}\
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}code{background:#f6f6f6;padding:0 .2rem}";

/// `![name](graphs/name.png)` → `name`.
fn chart_of(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("![")?;
    let (_, target) = rest.split_once("](graphs/")?;
    target.strip_suffix(".png)")
}

/// `runs.csv` and `csv/<run>.csv`; returns the files written.
pub fn csv(out: &Path, runs: &[Run]) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut table = String::from(
        "run,scenario,profile,runtime,gateways,users,duration_s,requests,failures,error_pct,\
         req_per_s,ok_req_per_s,avg_ms,p50_ms,p95_ms,p99_ms,max_ms,cache_hit_ratio_pct,sla_met\n",
    );
    for r in runs {
        let _ = writeln!(
            table,
            "{},{},{},{},{},{},{:.1},{},{},{:.3},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{},{}",
            field(&r.id),
            field(&r.scenario),
            field(&r.profile),
            field(&r.runtime),
            r.gateways,
            r.users,
            r.duration_secs,
            r.requests,
            r.failures,
            r.error_pct,
            r.rps,
            r.goodput,
            r.latency.avg,
            r.latency.p50,
            r.latency.p95,
            r.latency.p99,
            r.latency.max,
            r.hit_ratio
                .map_or(String::new(), |h| format!("{:.2}", h * 100.0)),
            r.sla_met.map_or(String::new(), |m| m.to_string()),
        );
    }
    let path = out.join("runs.csv");
    std::fs::write(&path, table)?;
    written.push(path);
    let dir = out.join("csv");
    std::fs::create_dir_all(&dir)?;
    for r in runs {
        let path = dir.join(format!("{}.csv", r.id));
        std::fs::write(&path, per_second(r))?;
        written.push(path);
    }
    Ok(written)
}

/// A run's seconds: users, requests and failures per second, answers by status class, and
/// latency percentiles of the second (empty where the second had none).
fn per_second(r: &Run) -> String {
    let s = &r.series;
    let classes: Vec<&String> = r.status_classes.keys().collect();
    let mut text =
        String::from("second_s,users,req_per_s,failed_per_s,avg_ms,p50_ms,p95_ms,p99_ms");
    for c in &classes {
        let _ = write!(text, ",status_{c}_per_s");
    }
    text.push('\n');
    let len = s.rps.len().max(s.p50_ms.len());
    let opt = |v: Option<&Option<f64>>| {
        v.copied()
            .flatten()
            .map_or(String::new(), |v| format!("{v:.2}"))
    };
    let num = |v: Option<&f64>| v.map_or(String::new(), |v| format!("{v:.2}"));
    for i in 0..len {
        let _ = write!(
            text,
            "{i},{},{},{},{},{},{},{}",
            s.users.get(i).map_or(String::new(), |u| format!("{u:.0}")),
            num(s.rps.get(i)),
            num(s.errors.get(i)),
            num(s.avg_ms.get(i)),
            opt(s.p50_ms.get(i)),
            opt(s.p95_ms.get(i)),
            opt(s.p99_ms.get(i)),
        );
        for c in &classes {
            let v = r.status_classes[*c]
                .get(i)
                .map_or(String::new(), |v| v.to_string());
            let _ = write!(text, ",{v}");
        }
        text.push('\n');
    }
    text
}

/// A CSV field: quoted when it holds a comma, a quote or a line end.
fn field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(field("1gw-hit"), "1gw-hit");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn html_in_the_markdown_is_shown_as_text() {
        let out = std::env::temp_dir().join(format!("report-html-{}", std::process::id()));
        std::fs::create_dir_all(out.join("graphs")).unwrap();
        std::fs::write(out.join("graphs/c.svg"), "<svg><text>ok</text></svg>").unwrap();
        let md = "| run |\n|---|\n| <script>alert(1)</script> |\n\n<img src=x onerror=alert(2)>\n\n![c](graphs/c.png)\n\n[x](javascript:alert(3)) <javascript:alert(4)> ![p](http://attacker.example/p.png) [ok](csv/a.csv)\n";
        let path = html(&out, md).unwrap();
        let page = std::fs::read_to_string(&path).unwrap();
        assert!(
            !page.contains("<script>alert") && !page.contains("<img src=x"),
            "{page}"
        );
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(
            !page.contains("href=\"javascript") && !page.contains("attacker.example"),
            "{page}"
        );
        assert!(page.contains("<a href=\"csv/a.csv\">ok</a>"), "{page}");
        // The charts alone are HTML.
        assert!(
            page.contains(
                "<figure role=\"img\" aria-label=\"c\"><svg><text>ok</text></svg></figure>"
            ),
            "{page}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn chart_lines_are_recognised() {
        assert_eq!(chart_of("![rps-x](graphs/rps-x.png)"), Some("rps-x"));
        assert_eq!(chart_of("see ![a](b.png)"), None);
    }
}
