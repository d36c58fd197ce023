//! Names more than one crate spells: a lab setting's name (its environment variable, its
//! `.env` key, its key in a run record and a report column). An enum, not string constants,
//! so that a misspelt name is a compile error; `parse` is the one way from text.

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
    /// Every lab setting (the lab's table, `lab/src/settings`, gives each its default, scope
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

#[cfg(test)]
mod tests {
    use super::SettingName;

    #[test]
    fn each_name_is_spelled_once_and_parses_back() {
        let mut seen = std::collections::BTreeSet::new();
        for name in SettingName::ALL {
            assert!(seen.insert(name.as_str()), "{name} twice");
            assert_eq!(SettingName::parse(name.as_str()), Some(*name));
        }
        assert_eq!(SettingName::parse("LB_PROT"), None);
    }
}
