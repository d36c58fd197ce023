//! `GET /listing?prefix=`: a slow listing (the microservice's object-store stand-in) behind
//! no cache, the shared Redis cache, or a cache inside each gateway (`LISTING_CACHE`). A
//! per-instance cache needs no network hop but each gateway fills its own, so with three
//! gateways the source is asked up to three times per TTL and two answers given at the
//! same moment may differ in age by up to the TTL.

use crate::auth::User;
use crate::cache::{redis_get, redis_set, Cached};
use crate::{CacheResult, St};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clap::Args;
use common::ApiError;
use records::wire::Listing;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListingCache {
    /// Every request asks the source.
    None,
    /// One entry per prefix in Redis, shared by every gateway.
    Redis,
    /// One entry per prefix in each gateway's memory.
    Local,
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct ListingConfig {
    #[arg(long, env = "LISTING_CACHE", value_enum, default_value = "local")]
    pub listing_cache: ListingCache,
    /// Lifetime of a cached listing: the most stale an answer can be.
    #[arg(long, env = "LISTING_TTL_SECS", default_value_t = 10)]
    pub listing_ttl_secs: u64,
}

/// Most prefixes a gateway keeps (the oldest entry makes room).
const LOCAL_ENTRIES: usize = 1000;

/// The per-instance cache: prefix → (when stored, listing).
#[derive(Default)]
pub struct LocalCache {
    entries: Mutex<HashMap<String, (Instant, Arc<Listing>)>>,
}

impl LocalCache {
    fn get(&self, prefix: &str, ttl: Duration) -> Option<Arc<Listing>> {
        let entries = self.entries.lock().expect("not poisoned");
        entries
            .get(prefix)
            .filter(|(stored, _)| stored.elapsed() < ttl)
            .map(|(_, listing)| listing.clone())
    }

    fn put(&self, listing: Arc<Listing>) {
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= LOCAL_ENTRIES && !entries.contains_key(&listing.prefix) {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (stored, _))| *stored)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(listing.prefix.clone(), (Instant::now(), listing));
    }
}

#[derive(Deserialize)]
pub struct PrefixQuery {
    prefix: Option<String>,
}

pub async fn listing(
    State(state): St,
    _user: User,
    query: Result<Query<PrefixQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(PrefixQuery { prefix }) = query?;
    let prefix =
        prefix.ok_or_else(|| ApiError::bad_request("query parameter `prefix` is required"))?;
    common::keys::validate(&prefix)?;
    let config = &state.config.listing;
    let ttl = Duration::from_secs(config.listing_ttl_secs.max(1));
    let counted = |result: CacheResult| state.metrics.cache.get("listing", result).inc();
    let path = format!("listing/{prefix}");
    let fetch = || state.upstream.get_json::<Listing>(&path);

    let (cached, listing) = match config.listing_cache {
        ListingCache::None => {
            counted(CacheResult::Bypass);
            (false, Arc::new(fetch().await?))
        }
        ListingCache::Local => match state.local_listings.get(&prefix, ttl) {
            Some(listing) => {
                counted(CacheResult::Hit);
                (true, listing)
            }
            None => {
                let listing = Arc::new(fetch().await?);
                state.local_listings.put(listing.clone());
                counted(CacheResult::Miss);
                (false, listing)
            }
        },
        ListingCache::Redis => {
            let key = format!("{}listing:{prefix}", state.config.redis.redis_key_prefix);
            let found = match redis_get(&state, &key).await {
                Cached::Hit(text) => serde_json::from_str::<Listing>(&text).ok(),
                Cached::Miss | Cached::Failed => None,
            };
            match found {
                Some(listing) => {
                    counted(CacheResult::Hit);
                    (true, Arc::new(listing))
                }
                None => {
                    let listing = fetch().await?;
                    let text = serde_json::to_string(&listing)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    let stored = redis_set(&state, &key, text, config.listing_ttl_secs).await;
                    counted(if stored {
                        CacheResult::Miss
                    } else {
                        CacheResult::Error
                    });
                    (false, Arc::new(listing))
                }
            }
        }
    };
    let now_ms = (records::time::now_unix() * 1000.0) as u64;
    let age_secs = now_ms.saturating_sub(listing.listed_at_ms) as f64 / 1000.0;
    state.metrics.listing_age.observe(age_secs);
    let mut response = Json(listing.as_ref()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "x-cache",
        HeaderValue::from_static(if cached { "HIT" } else { "MISS" }),
    );
    headers.insert("age", HeaderValue::from(age_secs as u64));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(prefix: &str) -> Arc<Listing> {
        Arc::new(Listing {
            prefix: prefix.into(),
            objects: vec![],
            listed_at_ms: 0,
        })
    }

    #[test]
    fn a_local_entry_lives_for_its_ttl_and_the_cache_stays_bounded() {
        let cache = LocalCache::default();
        cache.put(listing("a"));
        assert!(cache.get("a", Duration::from_secs(10)).is_some());
        assert!(cache.get("a", Duration::ZERO).is_none());
        assert!(cache.get("b", Duration::from_secs(10)).is_none());
        for i in 0..LOCAL_ENTRIES + 5 {
            cache.put(listing(&format!("p{i}")));
        }
        assert_eq!(cache.entries.lock().unwrap().len(), LOCAL_ENTRIES);
    }
}
