//! One reading of the stack's metrics: every endpoint the caller names, scraped at once. The
//! load generator's per-second samples (`server.jsonl`), the experiments' counters before and
//! after a side and the autoscaler's readings over a sync period are all made of these.

use crate::exposition::{scrape_named, Sample};
use records::names::Series;

/// Where the stack's `/metrics` are: the load balancer's, each gateway's (by its address,
/// `10.0.0.5:8000`), and the workers' and microservices' (full URLs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Targets {
    pub load_balancer: Option<String>,
    pub gateways: Vec<String>,
    pub workers: Vec<String>,
    pub microservices: Vec<String>,
    /// The metric names the reader uses (`None`: every sample): the rest of each page is
    /// skipped unparsed, which is most of it (histogram buckets).
    pub only: Option<&'static [Series]>,
}

/// What one endpoint answered: its samples, or why there are none.
pub type Scraped = Result<Vec<Sample>, String>;

/// Every target's answer at one moment, in the targets' order.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub load_balancer: Option<Scraped>,
    pub gateways: Vec<(String, Scraped)>,
    pub workers: Vec<(String, Scraped)>,
    pub microservices: Vec<(String, Scraped)>,
}

impl Targets {
    /// Scrapes every target concurrently (each bounded by the client's timeout).
    pub async fn read(&self, client: &reqwest::Client) -> Reading {
        let only = self.only;
        let one = |url: String| async move {
            let answer = scrape_named(client, &url, only)
                .await
                .map_err(|e| e.to_string());
            (url, answer)
        };
        let all = |urls: Vec<String>| futures::future::join_all(urls.into_iter().map(one));
        let gateway_urls: Vec<String> = self
            .gateways
            .iter()
            .map(|gw| format!("http://{gw}/metrics"))
            .collect();
        let (lb, gateways, workers, microservices) = futures::future::join4(
            all(self.load_balancer.iter().cloned().collect()),
            all(gateway_urls),
            all(self.workers.clone()),
            all(self.microservices.clone()),
        )
        .await;
        Reading {
            load_balancer: lb.into_iter().next().map(|(_, s)| s),
            gateways: self
                .gateways
                .iter()
                .cloned()
                .zip(gateways.into_iter().map(|(_, s)| s))
                .collect(),
            workers,
            microservices,
        }
    }
}

impl Reading {
    /// Every sample that was read, from every target.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.load_balancer
            .iter()
            .chain(self.gateways.iter().map(|(_, s)| s))
            .chain(self.workers.iter().map(|(_, s)| s))
            .chain(self.microservices.iter().map(|(_, s)| s))
            .filter_map(|s| s.as_ref().ok())
            .flatten()
    }
}
