//! Names more than one crate spells: a lab setting's name (its environment variable, its
//! `.env` key, its key in a run record and a report column) and a metric's (written by a
//! service, read by the lab, the load generator and the experiments). Enums, not string
//! constants, so that a misspelt name is a compile error; `parse` is the one way from text.

/// An enum of names, each variant spelled once, with every value (`ALL`), its text
/// (`as_str`) and the way back (`parse`).
macro_rules! names {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $($variant,)*
        }

        impl $name {
            /// Every name, in the order written.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// Its text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The name this text spells, if any.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|n| n.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// Every lab setting (the lab's table, `stack/src/settings`, gives each its default, scope
    /// and meaning; a test there checks that it covers each name once).
    pub enum SettingName {
        JwtSecret = "JWT_SECRET",
        AdminToken = "ADMIN_TOKEN",
        MaxInFlight = "MAX_IN_FLIGHT",
        MaxQueue = "MAX_QUEUE",
        QueueTimeoutMs = "QUEUE_TIMEOUT_MS",
        MicroserviceTimeoutMs = "MICROSERVICE_TIMEOUT_MS",
        GatewayCpus = "GATEWAY_CPUS",
        CacheEnabled = "CACHE_ENABLED",
        CacheTtlSecs = "CACHE_TTL_SECS",
        DbPoolSize = "DB_POOL_SIZE",
        DbDelayMs = "DB_DELAY_MS",
        SeedRows = "SEED_ROWS",
        ItemsIndex = "ITEMS_INDEX",
        DbPoolMode = "DB_POOL_MODE",
        MicroserviceClient = "MICROSERVICE_CLIENT",
        LongtaskMode = "LONGTASK_MODE",
        ListingCache = "LISTING_CACHE",
        ListingTtlSecs = "LISTING_TTL_SECS",
        ListingDelayMs = "LISTING_DELAY_MS",
        GatewayThreads = "GATEWAY_THREADS",
        WorkerConcurrency = "WORKER_CONCURRENCY",
        BatchSize = "BATCH_SIZE",
        VisibilityTimeoutMs = "VISIBILITY_TIMEOUT_MS",
        MaxAttempts = "MAX_ATTEMPTS",
        Workers = "WORKERS",
        Microservices = "MICROSERVICES",
        LabUsers = "LAB_USERS",
        LabPassword = "LAB_PASSWORD",
        HealthIntervalMs = "HEALTH_INTERVAL_MS",
        DiscoveryIntervalMs = "DISCOVERY_INTERVAL_MS",
        LbAlgorithm = "LB_ALGORITHM",
        LogFormat = "LOG_FORMAT",
        RustLog = "RUST_LOG",
        ShutdownGraceSecs = "SHUTDOWN_GRACE_SECS",
        ShutdownDelayMs = "SHUTDOWN_DELAY_MS",
        PostgresPassword = "POSTGRES_PASSWORD",
        ImageRegistry = "IMAGE_REGISTRY",
        ImageTag = "IMAGE_TAG",
        DockerSocket = "DOCKER_SOCKET",
        AutoscaleMetric = "AUTOSCALE_METRIC",
        AutoscaleTarget = "AUTOSCALE_TARGET",
        MinReplicas = "MIN_REPLICAS",
        MaxReplicas = "MAX_REPLICAS",
        SyncPeriodSecs = "SYNC_PERIOD_SECS",
        Tolerance = "TOLERANCE",
        ScaleUpStabilizationSecs = "SCALE_UP_STABILIZATION_SECS",
        ScaleDownStabilizationSecs = "SCALE_DOWN_STABILIZATION_SECS",
        ScaleUpPolicies = "SCALE_UP_POLICIES",
        ScaleDownPolicies = "SCALE_DOWN_POLICIES",
        SlaP95Ms = "SLA_P95_MS",
        Student = "STUDENT",
        Sla = "SLA",
        FailOnSla = "FAIL_ON_SLA",
        LbPort = "LB_PORT",
        LbMetricsPort = "LB_METRICS_PORT",
        LbAdminPort = "LB_ADMIN_PORT",
        MicroservicePort = "MICROSERVICE_PORT",
        WorkerPort = "WORKER_PORT",
        PrometheusPort = "PROMETHEUS_PORT",
        LivePort = "LIVE_PORT",
    }
}

names! {
    /// Every metric a service exposes on `/metrics` (Prometheus text) that some other code
    /// reads: the services write them by these names, the lab, the load generator and the
    /// experiments read them by the same.
    pub enum MetricName {
        LbBackendsHealthy = "lb_backends_healthy",
        LbBackendsKnown = "lb_backends_known",
        LbDiscoveryChangesTotal = "lb_discovery_changes_total",
        LbHealthChangesTotal = "lb_health_changes_total",
        LbNoBackendTotal = "lb_no_backend_total",
        LbRefusedRequestsTotal = "lb_refused_requests_total",
        LbRequestsTotal = "lb_requests_total",
        LbRetriesTotal = "lb_retries_total",
        LbStaleConnectionRetriesTotal = "lb_stale_connection_retries_total",
        LbUpstreamDurationSeconds = "lb_upstream_duration_seconds",
        HttpConnectionsAcceptedTotal = "http_connections_accepted_total",
        HttpRequestDurationSeconds = "http_request_duration_seconds",
        HttpRequestsInFlight = "http_requests_in_flight",
        HttpRequestsTotal = "http_requests_total",
        ProcessCpuSecondsTotal = "process_cpu_seconds_total",
        ProcessStartTimeSeconds = "process_start_time_seconds",
        LimiterInService = "limiter_in_service",
        LimiterMaxInFlight = "limiter_max_in_flight",
        LimiterRejectedTotal = "limiter_rejected_total",
        LimiterSlotSeconds = "limiter_slot_seconds",
        LimiterWaiting = "limiter_waiting",
        CacheRequestsTotal = "cache_requests_total",
        LoginsTotal = "logins_total",
        TasksEnqueuedTotal = "tasks_enqueued_total",
        TasksInlineTotal = "tasks_inline_total",
        ListingAgeSeconds = "listing_age_seconds",
        DbConnectDurationSeconds = "db_connect_duration_seconds",
        DbConnectionsOpenedTotal = "db_connections_opened_total",
        DbPoolAvailable = "db_pool_available",
        DbPoolConnections = "db_pool_connections",
        DbPoolMaxSize = "db_pool_max_size",
        DbPoolWaiting = "db_pool_waiting",
        DbQueryDurationSeconds = "db_query_duration_seconds",
        DbRequestConnectionsOpen = "db_request_connections_open",
        ListingsTotal = "listings_total",
        QueueLag = "queue_lag",
        QueueLength = "queue_length",
        QueuePending = "queue_pending",
        JobsDeadLetteredTotal = "jobs_dead_lettered_total",
        JobsInProgress = "jobs_in_progress",
        JobsMalformedTotal = "jobs_malformed_total",
        JobsProcessedTotal = "jobs_processed_total",
        JobsReclaimedTotal = "jobs_reclaimed_total",
        JobsReleasedTotal = "jobs_released_total",
        BatchFlushDurationSeconds = "batch_flush_duration_seconds",
        BatchSize = "batch_size",
        ResultsDuplicatesAbsorbedTotal = "results_duplicates_absorbed_total",
    }
}

impl MetricName {
    /// The histograms: each is read as its parts ([`MetricName::sum`], [`MetricName::count`],
    /// [`MetricName::bucket`]).
    pub const HISTOGRAMS: &'static [MetricName] = &[
        MetricName::BatchFlushDurationSeconds,
        MetricName::BatchSize,
        MetricName::DbConnectDurationSeconds,
        MetricName::DbQueryDurationSeconds,
        MetricName::HttpRequestDurationSeconds,
        MetricName::LbUpstreamDurationSeconds,
        MetricName::LimiterSlotSeconds,
        MetricName::ListingAgeSeconds,
    ];

    /// The metric's own samples (a counter's, a gauge's), as a [`Series`] in a `const`.
    pub const fn whole(self) -> Series {
        Series {
            metric: self,
            part: Part::Whole,
        }
    }

    /// A histogram's sum of observations (`<name>_sum`).
    pub const fn sum(self) -> Series {
        Series {
            metric: self,
            part: Part::Sum,
        }
    }

    /// A histogram's count of observations (`<name>_count`).
    pub const fn count(self) -> Series {
        Series {
            metric: self,
            part: Part::Count,
        }
    }

    /// A histogram's cumulative buckets (`<name>_bucket{le="…"}`).
    pub const fn bucket(self) -> Series {
        Series {
            metric: self,
            part: Part::Bucket,
        }
    }
}

/// Which samples of a metric: the metric itself, or one part of a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Whole,
    Sum,
    Count,
    Bucket,
}

impl Part {
    const fn suffix(self) -> &'static str {
        match self {
            Part::Whole => "",
            Part::Sum => "_sum",
            Part::Count => "_count",
            Part::Bucket => "_bucket",
        }
    }
}

/// The samples a reader looks up by name: a metric ([`MetricName`] converts into one) or a
/// part of a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Series {
    pub metric: MetricName,
    pub part: Part,
}

impl Series {
    /// Whether a sample's name is this series'.
    pub fn is(self, name: &str) -> bool {
        name.strip_prefix(self.metric.as_str()) == Some(self.part.suffix())
    }

    /// Its name in the exposition (`db_query_duration_seconds_sum`).
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl From<MetricName> for Series {
    fn from(metric: MetricName) -> Self {
        metric.whole()
    }
}

impl std::fmt::Display for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.metric.as_str(), self.part.suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::{MetricName, SettingName};

    #[test]
    fn each_name_is_spelled_once_and_parses_back() {
        let mut seen = std::collections::BTreeSet::new();
        for name in SettingName::ALL {
            assert!(seen.insert(name.as_str()), "{name} twice");
            assert_eq!(SettingName::parse(name.as_str()), Some(*name));
        }
        assert_eq!(SettingName::parse("LB_PROT"), None);
    }

    #[test]
    fn each_metric_is_spelled_once_and_a_series_knows_its_samples() {
        let mut seen = std::collections::BTreeSet::new();
        for name in MetricName::ALL {
            assert!(seen.insert(name.as_str()), "{name} twice");
            assert_eq!(MetricName::parse(name.as_str()), Some(*name));
        }
        let h = MetricName::DbQueryDurationSeconds;
        assert!(super::Series::from(h).is("db_query_duration_seconds"));
        assert!(h.sum().is("db_query_duration_seconds_sum"));
        assert!(!h.sum().is("db_query_duration_seconds_count"));
        assert!(!super::Series::from(h).is("db_query_duration_seconds_sum"));
        assert_eq!(h.count().to_string(), "db_query_duration_seconds_count");
        assert_eq!(h.bucket().name(), "db_query_duration_seconds_bucket");
        assert!(MetricName::HISTOGRAMS
            .iter()
            .all(|m| !m.as_str().ends_with("_total")));
    }
}
