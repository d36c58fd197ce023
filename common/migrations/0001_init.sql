-- One schema for the whole lab: the services share one database, each owns its tables.

-- gateway: lab users who can log in (argon2id PHC strings).
CREATE TABLE lab_users (
    username      text PRIMARY KEY,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- microservice: the seeded table its slow queries read. `bucket` is deliberately not
-- indexed, so a lookup by bucket scans the whole table: real database milliseconds.
CREATE TABLE items (
    id     bigint PRIMARY KEY,
    bucket integer NOT NULL,
    name   text NOT NULL,
    value  double precision NOT NULL
);

-- worker: one row per finished job, keyed by job id, so replays after a crash are no-ops.
CREATE TABLE task_results (
    id           text PRIMARY KEY,
    task         text NOT NULL,
    status       text NOT NULL CHECK (status IN ('done', 'failed')),
    result       jsonb NOT NULL,
    worker       text NOT NULL,
    attempts     integer NOT NULL,
    enqueued_at  timestamptz,
    finished_at  timestamptz NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);
