//! The shared Redis handle against a real Redis, reached through a relay that counts and
//! cuts connections.

use common::redis_conn::{Redis, RedisFailure};
use common::testing::{self, TcpRelay};
use std::time::{Duration, Instant};

async fn relayed(timeout_ms: u64) -> (TcpRelay, std::sync::Arc<Redis>) {
    let mut config = testing::redis_config();
    let relay = TcpRelay::start(testing::socket_of(&config.redis_url).await).await;
    config.redis_url = relay.rewrite_url(&config.redis_url);
    config.redis_timeout_ms = timeout_ms;
    (relay, Redis::new(&config).expect("valid url"))
}

async fn ping(redis: &Redis, limit: Duration) -> Result<String, RedisFailure> {
    redis.query_within(&redis::cmd("PING"), limit).await
}

#[tokio::test]
async fn callers_that_give_up_share_one_connect_that_still_finishes() {
    // A connect that takes 300 ms and a 100 ms budget per call: every early caller times
    // out, but the connect they share is not cancelled with them.
    let (relay, redis) = relayed(100).await;
    relay.set_delay(Duration::from_millis(300));
    let cmd = redis::cmd("PING");
    let early = futures::future::join_all((0..20).map(|_| redis.query::<String>(&cmd))).await;
    assert!(early.iter().all(|r| r.is_err()), "{early:?}");

    let ok = testing::wait_until(Duration::from_secs(5), || async {
        ping(&redis, Duration::from_secs(1)).await.is_ok()
    })
    .await;
    assert!(ok, "the background connect never finished");
    assert_eq!(relay.accepted(), 1, "one connection for all callers");
}

#[tokio::test]
async fn a_lost_redis_fails_fast_and_comes_back_by_itself() {
    let (relay, redis) = relayed(300).await;
    assert_eq!(ping(&redis, Duration::from_secs(2)).await.unwrap(), "PONG");

    relay.cut();
    for _ in 0..5 {
        let started = Instant::now();
        assert!(redis.query::<String>(&redis::cmd("PING")).await.is_err());
        // Bounded by the command timeout, never a hang.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    relay.restore();
    let back = testing::wait_until(Duration::from_secs(10), || async {
        redis.query::<String>(&redis::cmd("PING")).await.is_ok()
    })
    .await;
    assert!(back, "no reconnect after Redis came back");
}
