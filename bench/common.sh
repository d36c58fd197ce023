# Shared by bench/lb-compare and bench/lb-instructions (sourced, not run). The caller sets
# `bench` (its name, for messages), `root` (the project) and `work` (its temporary folder).
#
# Ports: upstreams 127.0.0.1:18081-18083; a load balancer on PORT uses PORT+1 (metrics) and
# PORT+2 (admin).

say() { printf '%s: %s\n' "$bench" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# require COMMAND=PACKAGE ...: installs from Debian the packages whose command is missing.
require() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null || [ -x "/usr/sbin/${pair%%=*}" ] || missing+=("${pair#*=}")
  done
  export PATH="$PATH:/usr/sbin"
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} from Debian packages"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "could not install ${missing[*]}"
}

# build_lb: sets lb_bin to the load balancer built with the release-lto profile (fat LTO, one
# codegen unit; its own profile folder, so the workspace's release build is not disturbed).
# SKIP_BUILD=1 reuses the last build.
build_lb() {
  if [ -z "${SKIP_BUILD:-}" ]; then
    say "building the load balancer with the release-lto profile (several minutes the first time)"
    (cd "$root" && cargo build --profile release-lto -p load_balancer -q)
  fi
  lb_bin="$root/target/release-lto/load_balancer"
  [ -x "$lb_bin" ] || die "$lb_bin missing: run without SKIP_BUILD"
}

# start_upstreams: one nginx worker answering `200 ok` on three ports, each naming itself in
# X-Served-By. Stopped through $work/upstreams.pid.
start_upstreams() {
  cat >"$work/upstreams.conf" <<CONF
worker_processes 1;
pid $work/upstreams.pid;
error_log $work/upstreams-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  server { listen 127.0.0.1:18081; location / { add_header X-Served-By up1; return 200 "ok\n"; } }
  server { listen 127.0.0.1:18082; location / { add_header X-Served-By up2; return 200 "ok\n"; } }
  server { listen 127.0.0.1:18083; location / { add_header X-Served-By up3; return 200 "ok\n"; } }
}
CONF
  nginx -c "$work/upstreams.conf" -p "$work" -e "$work/upstreams-error.log"
}

# nginx_proxy_conf FILE PORT WORKERS [TOP-LEVEL LINES]: nginx as a round-robin keep-alive
# proxy to the upstreams, listening on PORT.
nginx_proxy_conf() {
  cat >"$1" <<CONF
worker_processes $3;
${4:-}
pid $1.pid;
error_log $1-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  upstream gateways {
    server 127.0.0.1:18081; server 127.0.0.1:18082; server 127.0.0.1:18083;
    keepalive 256;
  }
  server {
    listen 127.0.0.1:$2;
    location / {
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
}

# lb_env PORT THREADS: the load balancer's settings for PORT in front of the upstreams, as
# NAME=VALUE words for `env` (so that `env $(lb_env ...) BINARY &` gives BINARY's own pid).
lb_env() {
  echo "LISTEN_ADDR=127.0.0.1:$1 METRICS_ADDR=127.0.0.1:$(($1 + 1)) ADMIN_ADDR=127.0.0.1:$(($1 + 2))" \
    "BACKENDS=127.0.0.1:18081,127.0.0.1:18082,127.0.0.1:18083 THREADS=$2 RUST_LOG=warn"
}
