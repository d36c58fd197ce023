//! The gateway's tactic switches with real peers: a microservice client per request
//! (`MICROSERVICE_CLIENT`), the listing behind no cache, Redis, or each gateway's memory
//! (`LISTING_CACHE`), and the runtime's threads (`GATEWAY_THREADS`).

use records::names::MetricName;

mod support;

use gateway::{ClientMode, ListingCache};
use support::*;

async fn connections_accepted(stack: &Stack) -> f64 {
    stack
        .metric(&stack.ms, MetricName::HttpConnectionsAcceptedTotal, &[])
        .await
}

#[tokio::test]
async fn a_client_per_request_opens_a_connection_per_miss_and_a_shared_one_reuses_one() {
    let mut stack = stack_with(0, false, |c| {
        c.cache.cache_enabled = false;
        c.cache.microservice_client = ClientMode::PerRequest;
    })
    .await;
    let token = stack.token().await;
    // Read before and after: the scrape's own kept-alive connection is counted once, first.
    let before = connections_accepted(&stack).await;
    for i in 0..6 {
        let r = stack.get(&format!("/data?key=pr{i}"), &token).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let after = connections_accepted(&stack).await;
    assert_eq!(after - before, 6.0);

    let shared = stack
        .add_gateway(|c| {
            c.cache.cache_enabled = false;
            c.cache.microservice_client = ClientMode::Shared;
        })
        .await;
    for i in 0..6 {
        let r = stack
            .send(
                stack
                    .http
                    .get(format!("{shared}/data?key=sh{i}"))
                    .bearer_auth(&token),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Sequential requests over one kept-alive connection: one more accept, not six.
    assert_eq!(connections_accepted(&stack).await - after, 1.0);
    let config: serde_json::Value = stack
        .http
        .get(format!("{}/config", stack.gw))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["config"]["microservice_client"], "per-request");
}

async fn listing(stack: &Stack, gw: &str, token: &str, prefix: &str) -> Reply {
    stack
        .send(
            stack
                .http
                .get(format!("{gw}/listing?prefix={prefix}"))
                .bearer_auth(token),
        )
        .await
}

async fn listings_made(stack: &Stack) -> f64 {
    stack
        .metric(&stack.ms, MetricName::ListingsTotal, &[])
        .await
}

#[tokio::test]
async fn a_local_listing_cache_is_filled_once_per_gateway_and_redis_once_for_all() {
    let cache = |mode| move |c: &mut gateway::Config| c.listing.listing_cache = mode;
    // Local: each of two gateways asks the source once, then answers from memory.
    let mut stack = stack_with(0, false, cache(ListingCache::Local)).await;
    let second = stack.add_gateway(cache(ListingCache::Local)).await;
    let token = stack.token().await;
    let first = stack.gw.clone();
    for gw in [&first, &second, &first, &second] {
        let r = listing(&stack, gw, &token, "photos").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let listing: records::wire::Listing = serde_json::from_value(r.body).unwrap();
        assert_eq!(listing.prefix, "photos");
    }
    assert_eq!(listings_made(&stack).await, 2.0);
    let hits = [("route", "listing"), ("result", "hit")];
    assert_eq!(
        stack
            .metric(&first, MetricName::CacheRequestsTotal, &hits)
            .await,
        1.0
    );
    assert_eq!(
        stack
            .metric(&second, MetricName::CacheRequestsTotal, &hits)
            .await,
        1.0
    );
    let r = listing(&stack, &first, &token, "photos").await;
    assert_eq!(r.headers["x-cache"], "HIT");
    assert!(r.headers.contains_key("age"));

    // Redis: the two gateways share one entry, so the source is asked once.
    let third = stack.add_gateway(cache(ListingCache::Redis)).await;
    let fourth = stack.add_gateway(cache(ListingCache::Redis)).await;
    for gw in [&third, &fourth, &third, &fourth] {
        assert_eq!(listing(&stack, gw, &token, "docs").await.status, 200);
    }
    assert_eq!(listings_made(&stack).await, 3.0);
    assert_eq!(
        stack
            .metric(&fourth, MetricName::CacheRequestsTotal, &hits)
            .await,
        2.0
    );

    // None: every request asks the source.
    let fifth = stack.add_gateway(cache(ListingCache::None)).await;
    for _ in 0..3 {
        let r = listing(&stack, &fifth, &token, "docs").await;
        assert_eq!(r.headers["x-cache"], "MISS");
    }
    assert_eq!(listings_made(&stack).await, 6.0);

    // Bad input: a 400 naming the parameter, and a 401 without a token.
    let r = listing(&stack, &first, &token, "no%20spaces").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = stack
        .send(
            stack
                .http
                .get(format!("{first}/listing"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"].as_str().unwrap().contains("prefix"));
    let r = stack
        .send(stack.http.get(format!("{first}/listing?prefix=a")))
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn a_cached_listing_expires_after_its_ttl() {
    let stack = stack_with(0, false, |c| {
        c.listing.listing_cache = ListingCache::Local;
        c.listing.listing_ttl_secs = 1;
    })
    .await;
    let token = stack.token().await;
    listing(&stack, &stack.gw, &token, "ttl").await;
    listing(&stack, &stack.gw, &token, "ttl").await;
    assert_eq!(listings_made(&stack).await, 1.0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = listing(&stack, &stack.gw, &token, "ttl").await;
    assert_eq!(r.headers["x-cache"], "MISS");
    assert_eq!(listings_made(&stack).await, 2.0);
    // The answers' ages were observed: one histogram sample per request.
    let observed = stack
        .metric(&stack.gw, MetricName::ListingAgeSeconds.count(), &[])
        .await;
    assert_eq!(observed, 3.0);
}

#[test]
fn gateway_threads_zero_means_one_per_core() {
    let config = gateway::Config::for_tests(
        "t",
        common::testing::db_config("postgres://x@127.0.0.1/x"),
        common::testing::redis_config(),
        "http://127.0.0.1:1".into(),
    );
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(config.threads(), cores);
    let one = gateway::Config {
        gateway_threads: 1,
        ..config
    };
    assert_eq!(one.threads(), 1);
}
