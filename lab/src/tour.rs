//! Lab 0, meet the stack (`make lab N=0`): the stack with 3 gateways, and the requests a
//! student then sends by hand, sent once by the lab first so that the class sees what each
//! answer looks like. The command lines (POSIX shell with curl, and PowerShell) are written
//! once, here; the handout (`labs/00-meet-the-stack.md`) holds each of them verbatim
//! (`lab/tests/handouts.rs`), and the POSIX ones are run against a real stack
//! (`lab/tests/native_scale.rs`).

use anyhow::{bail, Context};
use records::wire;
use stack::runtime::{Action, Runtime};
use stack::settings::Name;
use stack::settings::Settings;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The gateways lab 0 runs, and the one it kills.
pub const GATEWAYS: usize = 3;
pub const KILLED: &str = "gateway-2";

/// One thing a student types, in both shells.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub posix: &'static str,
    pub powershell: &'static str,
}

/// What a step has the student do: send a request (its line in each shell), or run one of
/// the lab's commands (`make act …`, or `docker compose run --rm lab act …` with Docker only).
#[derive(Debug, Clone, Copy)]
pub enum Item {
    Request(Line),
    Lab(&'static str),
}

impl Item {
    /// The line in a POSIX shell: the request, or the lab's command with make.
    pub fn posix(&self) -> String {
        match self {
            Item::Request(l) => l.posix.to_string(),
            Item::Lab(args) => format!("make {args}"),
        }
    }

    /// The line in PowerShell: the request, or the lab's command with Docker only.
    pub fn powershell(&self) -> String {
        match self {
            Item::Request(l) => l.powershell.to_string(),
            Item::Lab(args) => docker_only(args),
        }
    }
}

/// A lab command's Docker-only form (any shell).
pub fn docker_only(args: &str) -> String {
    format!("docker compose run --rm lab {args}")
}

/// A step of the tour: what it shows, and what shows it.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub title: &'static str,
    pub items: &'static [Item],
}

const KILL: Item = Item::Lab("act INSTANCE=gateway-2 ACTION=kill");
const START: Item = Item::Lab("act INSTANCE=gateway-2 ACTION=start");

/// The first lines: where the stack is, and a key nobody has asked for yet. `{lb}`,
/// `{metrics}`, `{key}` and `{password}` are filled by [`setup`].
const SETUP: Line = Line {
    posix: "LB=http://127.0.0.1:{lb}; METRICS=http://127.0.0.1:{metrics}; KEY={key}",
    powershell:
        "$lb = 'http://127.0.0.1:{lb}'; $metrics = 'http://127.0.0.1:{metrics}'; $key = '{key}'",
};

const LOGIN: Line = Line {
    posix: r#"TOKEN=$(curl -s -X POST "$LB/login" -H 'content-type: application/json' -d '{"username":"user1","password":"{password}"}' | sed -E 's/.*"token":"([^"]*)".*/\1/')"#,
    powershell: r#"$token = (Invoke-RestMethod -Method Post -Uri "$lb/login" -ContentType 'application/json' -Body '{"username":"user1","password":"{password}"}').token"#,
};

const DATA: Line = Line {
    posix: r#"curl -si -w '\ntime: %{time_total} s\n' "$LB/data?key=$KEY" -H "Authorization: Bearer $TOKEN""#,
    powershell: r#"$t = Measure-Command { $r = Invoke-WebRequest -UseBasicParsing -Uri "$lb/data?key=$key" -Headers @{Authorization = "Bearer $token"} }; $r.Headers; $r.Content; "time: $($t.TotalMilliseconds) ms""#,
};

const LISTING: Line = Line {
    posix: r#"for i in 1 2 3 4; do curl -s -o /dev/null -D - "$LB/listing?prefix=$KEY" -H "Authorization: Bearer $TOKEN" | grep -iE '^(x-cache|x-served-by|age):'; sleep 1; done"#,
    powershell: r#"1..4 | ForEach-Object { $h = (Invoke-WebRequest -UseBasicParsing -Uri "$lb/listing?prefix=$key" -Headers @{Authorization = "Bearer $token"}).Headers; "$($h['X-Cache']) $($h['X-Served-By']) Age $($h['Age'])"; Start-Sleep 1 }"#,
};

const LONGTASK: Line = Line {
    posix: r#"curl -si -X POST "$LB/longtask" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"task":"report","payload":{"duration_ms":3000}}' | tee "${TMPDIR:-/tmp}/task.txt""#,
    powershell: r#"$r = Invoke-WebRequest -UseBasicParsing -Method Post -Uri "$lb/longtask" -Headers @{Authorization = "Bearer $token"} -ContentType 'application/json' -Body '{"task":"report","payload":{"duration_ms":3000}}'; $r.StatusCode; $r.Headers; $task = "$($r.Headers.Location)""#,
};

const LOCATION: Line = Line {
    posix: r#"TASK=$(sed -n 's/^[Ll]ocation: *//p' "${TMPDIR:-/tmp}/task.txt" | tr -d '\r'); echo "$TASK""#,
    powershell: r#"$task"#,
};

const STATUS: Line = Line {
    posix: r#"curl -s "$LB$TASK" -H "Authorization: Bearer $TOKEN""#,
    powershell: r#"Invoke-RestMethod -Uri "$lb$task" -Headers @{Authorization = "Bearer $token"}"#,
};

const ROTATION: Line = Line {
    posix: r#"for i in 1 2 3 4 5 6; do curl -s -o /dev/null -D - "$LB/data?key=$KEY" -H "Authorization: Bearer $TOKEN" | grep -i '^x-served-by'; done"#,
    powershell: r#"1..6 | ForEach-Object { (Invoke-WebRequest -UseBasicParsing -Uri "$lb/data?key=$key" -Headers @{Authorization = "Bearer $token"}).Headers['X-Served-By'] }"#,
};

const BACKENDS: Line = Line {
    posix: r#"curl -s "$METRICS/backends""#,
    powershell: r#"Invoke-RestMethod -Uri "$metrics/backends" | ConvertTo-Json -Depth 4"#,
};

/// Every step, in the handout's order.
pub const STEPS: &[Step] = &[
    Step {
        title: "Log in as user1 and keep the token",
        items: &[Item::Request(LOGIN)],
    },
    Step {
        title: "Ask for a key nobody has asked for: a cache miss",
        items: &[Item::Request(DATA)],
    },
    Step {
        title: "The same request again: a cache hit",
        items: &[Item::Request(DATA)],
    },
    Step {
        title: "A listing four times, a second apart: a cache inside each gateway, and its Age",
        items: &[Item::Request(LISTING)],
    },
    Step {
        title: "A long task: accepted (202) and queued",
        items: &[Item::Request(LONGTASK), Item::Request(LOCATION)],
    },
    Step {
        title: "Its status, now and after 3 seconds",
        items: &[Item::Request(STATUS)],
    },
    Step {
        title: "Six requests: which gateway served each",
        items: &[Item::Request(ROTATION)],
    },
    Step {
        title: "The load balancer's view: the gateways in rotation",
        items: &[Item::Request(BACKENDS)],
    },
    Step {
        title: "Kill gateway 2; the rotation without it",
        items: &[KILL, Item::Request(BACKENDS), Item::Request(ROTATION)],
    },
    Step {
        title: "Start it again; back in rotation once healthy",
        items: &[START, Item::Request(BACKENDS)],
    },
];

/// The setup line for these ports, key and password.
pub fn setup(posix: bool, settings: &Settings, key: &str) -> String {
    let line = if posix { SETUP.posix } else { SETUP.powershell };
    line.replace("{lb}", settings.get(Name::LbPort))
        .replace("{metrics}", settings.get(Name::LbMetricsPort))
        .replace("{key}", key)
}

/// A step's line with the password in force (the lab users' `LAB_PASSWORD`).
pub fn fill(line: &str, settings: &Settings) -> String {
    line.replace("{password}", settings.get(Name::LabPassword))
}

/// The whole POSIX script of the curl steps, in order, for these settings and key: what the
/// handout's lines do when pasted one after the other (the kill and start lines left out:
/// they are the lab's commands, not requests).
pub fn posix_script(settings: &Settings, key: &str) -> Vec<String> {
    let mut out = vec![setup(true, settings, key)];
    for step in STEPS {
        for item in step.items {
            if let Item::Request(line) = item {
                out.push(fill(line.posix, settings));
            }
        }
    }
    out
}

/// One answer, as the tour saw it.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub cache: Option<String>,
    pub served_by: Option<String>,
    pub age: Option<u64>,
    pub ms: f64,
}

/// What the tour saw: the lab's tests read it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub miss: Answer,
    pub hit: Answer,
    /// The listing four times, a second apart.
    pub listing: Vec<Answer>,
    pub accepted: u16,
    pub accepted_ms: f64,
    pub location: String,
    pub first_status: String,
    pub last_status: Option<wire::TaskStatus>,
    pub served: BTreeMap<String, usize>,
    pub in_rotation: usize,
    /// After the kill.
    pub served_without: BTreeMap<String, usize>,
    pub in_rotation_without: usize,
    pub left_rotation_after: Duration,
    pub in_rotation_again: usize,
}

struct Client {
    http: reqwest::Client,
    target: String,
    token: String,
}

impl Client {
    async fn get(&self, path: &str) -> anyhow::Result<(Answer, reqwest::Response)> {
        let started = Instant::now();
        let resp = self
            .http
            .get(format!("{}{path}", self.target))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}: the load balancer does not answer"))?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let answer = Answer {
            status: resp.status().as_u16(),
            cache: header("x-cache"),
            served_by: header("x-served-by"),
            age: header("age").and_then(|a| a.parse().ok()),
            ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        if !resp.status().is_success() {
            bail!("GET {path} answered {}", resp.status());
        }
        Ok((answer, resp))
    }

    async fn status(&self, location: &str) -> anyhow::Result<wire::TaskStatus> {
        let (_, resp) = self.get(location).await?;
        resp.json().await.context("GET /tasks/…: not a task status")
    }

    async fn served_by(&self, path: &str, n: usize) -> anyhow::Result<BTreeMap<String, usize>> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let (answer, _) = self.get(path).await?;
            *out.entry(answer.served_by.unwrap_or_else(|| "?".into()))
                .or_default() += 1;
        }
        Ok(out)
    }
}

fn say(step: usize, lines: &[String], saw: String) {
    eprintln!("\n{}. {}", step + 1, STEPS[step].title);
    for line in lines {
        eprintln!("   {line}");
    }
    eprintln!("   → {saw}");
}

fn show(a: &Answer) -> String {
    let mut parts = vec![format!("{}", a.status)];
    if let Some(c) = &a.cache {
        parts.push(format!("X-Cache: {c}"));
    }
    if let Some(s) = &a.served_by {
        parts.push(format!("X-Served-By: {s}"));
    }
    if let Some(age) = a.age {
        parts.push(format!("Age: {age}"));
    }
    parts.push(format!("{:.0} ms", a.ms));
    parts.join(", ")
}

fn counts(m: &BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Polls `/backends` until `want(in rotation)` holds (health checks run each
/// `HEALTH_INTERVAL_MS`), at most `limit`.
async fn rotation_until(
    rt: &dyn Runtime,
    want: impl Fn(usize) -> bool,
    limit: Duration,
) -> anyhow::Result<(usize, Duration)> {
    let started = Instant::now();
    loop {
        let n = rt.stack().load_balancer.in_rotation().await;
        if want(n) {
            return Ok((n, started.elapsed()));
        }
        if started.elapsed() > limit {
            bail!("{n} gateways in rotation after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Brings the stack to 3 gateways, sends every step's request once, prints what came back,
/// and leaves the stack up for the student's own turn.
pub async fn run(rt: &mut dyn Runtime, key: &str) -> anyhow::Result<Seen> {
    let settings = rt.stack().settings.clone();
    rt.up(&settings, GATEWAYS).await?;
    let target = rt.stack().endpoints().target;
    let http = common::http::client(Duration::from_secs(10));
    let lines = |step: usize| -> Vec<String> {
        STEPS[step]
            .items
            .iter()
            .flat_map(|i| {
                [
                    format!("$ {}", fill(&i.posix(), &settings)),
                    format!("PS> {}", fill(&i.powershell(), &settings)),
                ]
            })
            .collect()
    };
    eprintln!(
        "\nLab 0: the stack runs {GATEWAYS} gateways. The lab sends each request of the handout \
         once (with its own key, {key}); then it is your turn (labs/00-meet-the-stack.md). \
         First, in your shell, with a key of your own (your name and a number):\n   $ {}\n   \
         PS> {}",
        setup(true, &settings, "ada-1"),
        setup(false, &settings, "ada-1")
    );
    let login = wire::Login {
        username: "user1".into(),
        password: settings.get(Name::LabPassword).to_string(),
    };
    let token = probe::client::log_in(&http, &target, &login)
        .await
        .context("POST /login")?;
    say(0, &lines(0), "a token (a JWT) for user1".into());
    let c = Client {
        http,
        target,
        token,
    };
    let mut seen = Seen::default();
    let data = format!("/data?key={key}");
    seen.miss = c.get(&data).await?.0;
    say(1, &lines(1), show(&seen.miss));
    seen.hit = c.get(&data).await?.0;
    say(2, &lines(2), show(&seen.hit));

    let listing = format!("/listing?prefix={key}");
    for i in 0..4 {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        seen.listing.push(c.get(&listing).await?.0);
    }
    say(
        3,
        &lines(3),
        seen.listing.iter().map(show).collect::<Vec<_>>().join("; "),
    );

    let started = Instant::now();
    let resp = c
        .http
        .post(format!("{}/longtask", c.target))
        .bearer_auth(&c.token)
        .json(&wire::NewTask {
            task: "report".into(),
            payload: serde_json::json!({"duration_ms": 3000}),
        })
        .send()
        .await
        .context("POST /longtask: the load balancer does not answer")?;
    seen.accepted = resp.status().as_u16();
    seen.accepted_ms = started.elapsed().as_secs_f64() * 1000.0;
    seen.location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if seen.location.is_empty() {
        bail!(
            "POST /longtask answered {} without a Location",
            seen.accepted
        );
    }
    say(
        4,
        &lines(4),
        format!(
            "{}, Location: {}, {:.0} ms",
            seen.accepted, seen.location, seen.accepted_ms
        ),
    );
    seen.first_status = c.status(&seen.location).await?.status;
    let started = Instant::now();
    let last = loop {
        let now = c.status(&seen.location).await?;
        if now.finished() || started.elapsed() > Duration::from_secs(30) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    say(
        5,
        &lines(5),
        format!(
            "{} at first; {} after {:.1} s, stored by {}",
            seen.first_status,
            last.status,
            started.elapsed().as_secs_f64(),
            last.worker.as_deref().unwrap_or("?")
        ),
    );
    seen.last_status = Some(last);

    seen.served = c.served_by(&data, 6).await?;
    say(6, &lines(6), counts(&seen.served));
    let backends = rt.stack().load_balancer.backends().await?;
    seen.in_rotation = backends.in_rotation().count();
    say(
        7,
        &lines(7),
        format!(
            "{} in rotation: {}",
            seen.in_rotation,
            backends
                .in_rotation()
                .map(|b| b.addr.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    rt.act(KILLED, Action::Kill).await?;
    let (n, after) = rotation_until(rt, |n| n < GATEWAYS, Duration::from_secs(30)).await?;
    seen.in_rotation_without = n;
    seen.left_rotation_after = after;
    seen.served_without = c.served_by(&data, 6).await?;
    say(
        8,
        &lines(8),
        format!(
            "{n} in rotation {:.1} s after the kill (health checks every {} ms); {}",
            after.as_secs_f64(),
            settings.get(Name::HealthIntervalMs),
            counts(&seen.served_without)
        ),
    );
    rt.act(KILLED, Action::Start).await?;
    let (n, after) = rotation_until(rt, |n| n == GATEWAYS, Duration::from_secs(60)).await?;
    seen.in_rotation_again = n;
    say(
        9,
        &lines(9),
        format!(
            "{n} in rotation {:.1} s after the start",
            after.as_secs_f64()
        ),
    );
    eprintln!(
        "\nThe stack stays up: now send each request yourself (the handout's lines), then \
         `make ps`, `make logs SERVICE=gateway`, and `make down` when you are done."
    );
    Ok(seen)
}

/// A key no one has asked for yet: lab 0's first request must be a miss.
pub fn fresh_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("meet-{:x}", nanos % (1 << 40))
}
