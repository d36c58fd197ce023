//! The Prometheus text format every service's `/metrics` answers, as its readers need it:
//! samples parsed leniently, summed by name and labels, scraped over HTTP.

use records::names::Series;

/// One sample of the Prometheus text format: `name{label="v",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Parses Prometheus text exposition (what every service's `/metrics` returns). Lines it
/// cannot read are skipped: a scrape is evidence, not input to trust blindly.
pub fn parse_text(text: &str) -> Vec<Sample> {
    parse_named(text, None)
}

/// [`parse_text`] keeping only the samples whose name is in `only` (every one with `None`):
/// the other lines are skipped before any of their labels is read.
pub fn parse_named(text: &str, only: Option<&[Series]>) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(|l| {
            only.is_none_or(|names| {
                let l = l.trim_start();
                let end = l
                    .find(|c: char| c == '{' || c.is_whitespace())
                    .unwrap_or(l.len());
                names.iter().any(|n| n.is(&l[..end]))
            })
        })
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    // `name{labels} value [timestamp]`: label values may hold spaces, so the series ends at
    // the last `}` when it has labels, else at the first blank.
    let line = line.trim();
    let first_blank = line.find(char::is_whitespace)?;
    let end = match line.find('{') {
        Some(open) if open < first_blank => line.rfind('}')? + 1,
        _ => first_blank,
    };
    let (series, rest) = line.split_at(end);
    let mut fields = rest.split_whitespace();
    let value = fields.next()?;
    // An exposition timestamp (milliseconds) may follow; anything more is not the format.
    if let Some(stamp) = fields.next() {
        stamp.parse::<i64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series.to_string(), Default::default()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}')?;
            let mut labels = std::collections::BTreeMap::new();
            let mut chars = body.chars().peekable();
            loop {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                if key.is_empty() {
                    break;
                }
                if chars.next() != Some('"') {
                    return None;
                }
                let mut val = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next()? {
                            'n' => val.push('\n'),
                            other => val.push(other),
                        },
                        '"' => break,
                        c => val.push(c),
                    }
                }
                labels.insert(key.trim_start_matches(',').to_string(), val);
                if chars.peek() == Some(&',') {
                    chars.next();
                }
            }
            (name.to_string(), labels)
        }
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Sum of every sample of `series` (a metric, or a part of a histogram) whose labels include
/// all of `matching`.
pub fn sum(samples: &[Sample], series: impl Into<Series>, matching: &[(&str, &str)]) -> f64 {
    let series = series.into();
    samples
        .iter()
        .filter(|s| series.is(&s.name))
        .filter(|s| {
            matching
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        // fold from +0.0: `sum` of nothing is -0.0, which a record would print as such.
        .fold(0.0, |total, v| total + v)
}

/// Fetches and parses a service's `/metrics` (`url` is the full address of the endpoint).
pub async fn scrape(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Sample>> {
    scrape_named(client, url, None).await
}

/// [`scrape`] keeping only the samples named in `only` (every one with `None`).
pub async fn scrape_named(
    client: &reqwest::Client,
    url: &str,
    only: Option<&[Series]>,
) -> anyhow::Result<Vec<Sample>> {
    let text = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(parse_named(&text, only))
}

#[cfg(test)]
mod tests {
    use super::*;

    use records::names::MetricName;

    #[test]
    fn only_the_named_samples_are_kept() {
        let text = "# HELP x\nhttp_requests_total{route=\"/data\",status=\"200\"} 7\n\
                    http_request_duration_seconds_bucket{le=\"0.1\"} 3\n  queue_lag 1\n\
                    queue_lagx 2\nhttp_request_duration_seconds_count 4\n";
        let all = parse_text(text);
        assert_eq!(all.len(), 5);
        let wanted = [
            MetricName::HttpRequestsTotal.into(),
            MetricName::QueueLag.into(),
            MetricName::HttpRequestDurationSeconds.count(),
        ];
        let some = parse_named(text, Some(&wanted));
        assert_eq!(
            some.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            vec![
                "http_requests_total",
                "queue_lag",
                "http_request_duration_seconds_count"
            ]
        );
        assert_eq!(
            sum(&some, MetricName::HttpRequestsTotal, &[("status", "200")]),
            7.0
        );
        assert_eq!(
            sum(&some, MetricName::HttpRequestDurationSeconds.count(), &[]),
            4.0
        );
        assert_eq!(sum(&some, MetricName::HttpRequestDurationSeconds, &[]), 0.0);
        assert!(parse_named(text, Some(&[])).is_empty());
    }
}
