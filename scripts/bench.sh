#!/usr/bin/env bash
# One bench command: crm-server measured from outside, with wrk, on memory://, sled://
# and postgres://, printed as one markdown table with ratios.
#
#   bash scripts/bench.sh
#   CONTACTS=5000 DURATION=3 STORAGES="memory sled" bash scripts/bench.sh
#
# Knobs (environment): CONTACTS (100000), COMPANIES (100), DURATION (seconds per wrk or
# pgbench run, 10), CONNECTIONS (wrk connections for reads, 64), STORAGES
# ("memory sled postgres"), PROFILE (a directory: each read run is also sampled with
# `perf record` on crm-server, and its top symbols written next to the data as .txt).
#
# Per storage: builds crm-server and crm-bench-load (release), loads the data set
# (sled and PostgreSQL directly through the storage's bulk path, memory over HTTP),
# starts crm-server on 127.0.0.1 with rate limits out of the way and logs at `warn`
# into a temp dir, and runs `wrk -t2`: /health, a contact by random id, a company's
# page of 50 (default order and `sort=-created_at`), the company's last page reached
# by walking `next_cursor`, and creates (16 connections). On PostgreSQL (a throwaway
# cluster on a unix socket, fsync on) `pgbench -S` runs on the same server. Also the
# server's RSS, sled's bytes per contact, and the start-up time on an empty sled dir.
# Needs root for `apt-get install wrk` when wrk is missing, and PostgreSQL's binaries
# (/usr/lib/postgresql/*/bin, pgbench) for postgres. Everything it starts is stopped
# and its temp dirs removed on exit. Progress goes to stderr, the table to stdout.
set -euo pipefail

CONTACTS=${CONTACTS:-100000}
COMPANIES=${COMPANIES:-100}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
STORAGES=${STORAGES:-memory sled postgres}
PROFILE=${PROFILE:-}
CREATE_CONNECTIONS=16
ADMIN_EMAIL=admin@bench.test
ADMIN_PASSWORD=bench-admin-password-1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release
BENCH_STARTED=$EPOCHREALTIME
LOAD_AT_START=$(cut -d" " -f1-3 /proc/loadavg)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- clean-up
WORK=$(mktemp -d /tmp/crm-bench.XXXXXX)
PGDIR=""
PGBIN=""
SERVER_PID=""

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop_server() {
  local pid=${SERVER_PID:-}
  SERVER_PID=""
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  stop_server
  if [ -n "$PGDIR" ] && [ -f "$PGDIR/data/postmaster.pid" ]; then
    as_pg "$PGBIN/pg_ctl" stop -D "$PGDIR/data" -m fast -w >/dev/null 2>&1 || true
  fi
  [ -n "$PGDIR" ] && rm -rf "$PGDIR"
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- prerequisites
if [ -n "$PROFILE" ]; then
  command -v perf >/dev/null || die "PROFILE needs perf (Debian: linux-perf)"
  mkdir -p "$PROFILE" && PROFILE=$(cd "$PROFILE" && pwd)
fi
for n in "$CONTACTS" "$COMPANIES" "$DURATION" "$CONNECTIONS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "CONTACTS, COMPANIES, DURATION and CONNECTIONS must be positive integers"
done
for s in $STORAGES; do
  case $s in memory | sled | postgres) ;; *) die "unknown storage '$s' in STORAGES (memory sled postgres)" ;; esac
done
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2
fi
command -v curl >/dev/null || die "curl is needed"
if [[ " $STORAGES " == *" postgres "* ]]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -x "$PGBIN/initdb" ] || die "PostgreSQL binaries not found in /usr/lib/postgresql/*/bin"
  command -v pgbench >/dev/null || die "pgbench not found"
fi

log "building crm-server and crm-bench-load (release)"
(cd "$ROOT" && cargo build --release --quiet -p crm-http --bin crm-server -p crm-benches --bin crm-bench-load) >&2

# ---------------------------------------------------------------- helpers
free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 40000))
    if ! { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
      echo "$port"
      return
    fi
    exec 3<&-
  done
  die "no free port found"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }

# Starts crm-server on STORAGE_URL and a fresh port; sets SERVER_PID, PORT, BASE.
# Extra arguments go to crm-server. Waits until /health answers (60 s at most).
start_server() {
  local url=$1 dir=$2
  shift 2
  PORT=$(free_port)
  BASE=http://127.0.0.1:$PORT
  mkdir -p "$dir"
  CRM_JWT_SECRET=$JWT_SECRET "$BIN/crm-server" --storage "$url" --bind "127.0.0.1:$PORT" --data-dir "$dir" \
    --admin-email "$ADMIN_EMAIL" --admin-password "$ADMIN_PASSWORD" \
    --rate-limit-ip 1000000000 --rate-limit-user 1000000000 --log-level warn --log-format json \
    --no-workers --shutdown-grace-secs 2 "$@" >"$dir/server.out" 2>"$dir/server.log" &
  SERVER_PID=$!
  wait_health "$dir" 60 >/dev/null
}

# Polls /health as fast as bash can (no fork per attempt) until it answers 200;
# prints the seconds since START (an $EPOCHREALTIME), or fails after $2 s.
wait_health() {
  local dir=$1 limit=$2 start=${3:-$EPOCHREALTIME} status
  while :; do
    if { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null; then
      printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
      status=""
      read -r -t 5 _ status _ <&3 || true
      exec 3<&-
      if [ "$status" = 200 ]; then
        awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}'
        return 0
      fi
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/server.log" >&2; die "crm-server exited"; }
    if awk -v a="$start" -v b="$EPOCHREALTIME" -v l="$limit" 'BEGIN {exit !(b - a > l)}'; then
      die "crm-server did not answer /health within $limit s"
    fi
  done
}

sign_in() {
  local answer
  answer=$(curl -sS -m 30 "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}")
  TOKEN=$(printf '%s' "$answer" | grep -o '"access_token":"[^"]*"' | cut -d'"' -f4 || true)
  [ -n "$TOKEN" ] || die "sign-in failed: $answer"
}

# GET with the token; prints the body, fails unless 200.
api_get() {
  local out=$WORK/get.json code
  code=$(curl -sS -m 30 -o "$out" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE$1")
  [ "$code" = 200 ] || die "GET $1: $code $(head -c 500 "$out")"
  cat "$out"
}

# The path of a company's last page of 50 (default order), reached by walking the
# cursor from the first; sets DEEP_PATH and DEEP_PAGE.
walk_to_last_page() {
  local first=$1 cursor body
  DEEP_PATH=$first
  DEEP_PAGE=1
  body=$(api_get "$first")
  while cursor=$(printf '%s' "$body" | grep -o '"next_cursor":"[^"]*"' | cut -d'"' -f4) && [ -n "$cursor" ]; do
    DEEP_PATH="$first&cursor=$cursor"
    DEEP_PAGE=$((DEEP_PAGE + 1))
    body=$(api_get "$DEEP_PATH")
  done
}

# wrk Lua scripts: random ids from a file, and unique creates.
cat >"$WORK/by-id.lua" <<'LUA'
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) math.randomseed(os.time() * 1000 + tid) end
function request() return wrk.format("GET", "/api/v1/contacts/" .. ids[math.random(#ids)]) end
LUA
cat >"$WORK/create.lua" <<'LUA'
local companies = {}
for line in io.lines(os.getenv("BENCH_IDS")) do companies[#companies + 1] = line end
local run = os.time()
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) n = 0; math.randomseed(run * 1000 + tid) end
function request()
  n = n + 1
  local body = string.format(
    '{"first_name":"Bench","last_name":"Writer%d","email":"writer.%d.%d.%d@example.com","position":"Buyer","company_id":"%s"}',
    n % 1000, run, tid, n, companies[math.random(#companies)])
  return wrk.format("POST", "/api/v1/contacts", nil, body)
end
LUA

# Runs wrk for SECONDS and adds its counts to R[$STORAGE,NAME_…]: requests, time
# (requests ÷ rate), the worst p99, non-2xx and socket errors. `finish NAME` turns them
# into the rate. Usage: run_wrk NAME CONNECTIONS SECONDS PATH [wrk args…]
run_wrk() {
  local name=$1 conns=$2 secs=$3 path=$4 out k=$STORAGE,$1
  shift 4
  WRK_RUNS=$((WRK_RUNS + 1))
  out=$WORK/wrk-$STORAGE-$name-$WRK_RUNS.txt
  local perf_pid="" profile=$PROFILE/$STORAGE-$name-$WRK_RUNS
  if [ -n "$PROFILE" ]; then
    perf record -q -F 999 -g -p "$SERVER_PID" -o "$profile.data" -- sleep "$secs" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" "$BASE$path" >"$out" 2>&1 || {
    cat "$out" >&2
    die "wrk $name failed"
  }
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || log "perf record failed for $name"
    perf report -i "$profile.data" --no-children --sort symbol -g none --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -40 >"$profile.txt" || true
    log "profile of $STORAGE $name: $profile.txt"
  fi
  local reqs rps p99 non2xx socket
  reqs=$(awk '/ requests in / {print $1}' "$out")
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out" | to_ms)
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
  socket=$(awk -F'Socket errors: ' '/Socket errors:/ {n = split($2, f, /[^0-9]+/); for (i = 1; i <= n; i++) s += f[i]; print s}' "$out")
  [ -n "$reqs" ] && [ -n "$rps" ] || { cat "$out" >&2; die "cannot read wrk's output for $name"; }
  R[$k,reqs]=$(awk -v a="${R[$k,reqs]:-0}" -v b="$reqs" 'BEGIN {print a + b}')
  R[$k,time]=$(awk -v a="${R[$k,time]:-0}" -v r="$reqs" -v x="$rps" 'BEGIN {print a + (x > 0 ? r / x : 0)}')
  R[$k,p99]=$(awk -v a="${R[$k,p99]:-0}" -v b="$p99" 'BEGIN {print (b > a ? b : a)}')
  R[$k,non2xx]=$((${R[$k,non2xx]:-0} + ${non2xx:-0}))
  R[$k,socket]=$((${R[$k,socket]:-0} + ${socket:-0}))
  if [ -n "$non2xx" ] || [ "${socket:-0}" -gt 0 ]; then
    log "!!! $STORAGE $name: ${non2xx:-0} non-2xx, ${socket:-0} socket errors of $reqs requests ($out: $(grep 'Socket errors' "$out" || true))"
  fi
  log "$STORAGE $name (${secs}s): $rps req/s, p99 $p99 ms"
}

# The rate of NAME over its runs, its worst p99 and its errors, as R[$STORAGE,NAME],
# R[…,NAME_p99], R[…,NAME_err].
finish() {
  local name=$1 k=$STORAGE,$1 err=""
  R[$k]=$(awk -v r="${R[$k,reqs]}" -v t="${R[$k,time]}" 'BEGIN {printf "%.1f", (t > 0 ? r / t : 0)}')
  R[${k}_p99]=$(awk -v p="${R[$k,p99]}" 'BEGIN {printf "%.2f", p}')
  [ "${R[$k,non2xx]}" -gt 0 ] && err="${R[$k,non2xx]} non-2xx"
  [ "${R[$k,socket]}" -gt 0 ] && err="${err:+$err, }${R[$k,socket]} socket errors"
  R[${k}_err]=$err
  [ -z "$err" ] || WARNINGS+=("$STORAGE $name: $err of ${R[$k,reqs]} requests")
}

# pgbench -S for SECONDS on the bench's PostgreSQL; adds its tps to R[postgres,pgbench_…].
run_pgbench() {
  local secs=$1 tps
  as_pg pgbench -S -c16 -j2 -T"$secs" -h "$PGDIR" -p 5432 -U postgres pgbench >"$WORK/pgbench.txt" 2>&1 ||
    { cat "$WORK/pgbench.txt" >&2; die "pgbench failed"; }
  tps=$(awk '/^tps = / {print $3; exit}' "$WORK/pgbench.txt")
  [ -n "$tps" ] || { cat "$WORK/pgbench.txt" >&2; die "no tps in pgbench's output"; }
  R[postgres,pgbench_sum]=$(awk -v a="${R[postgres,pgbench_sum]:-0}" -v b="$tps" 'BEGIN {print a + b}')
  R[postgres,pgbench_n]=$((${R[postgres,pgbench_n]:-0} + 1))
  log "postgres pgbench -S -c16 -j2 -T$secs: $tps tps"
}

# wrk latency (`812.00us`, `3.21ms`, `1.02s`) in ms.
to_ms() {
  awk '{v = $1; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1;
        printf "%.2f", v * f}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b + 0 == 0) print "—"; else printf "%.3f", a / b}'; }
num() { awk -v a="$1" 'BEGIN {if (a == "") print "—"; else printf "%.0f", a}'; }

declare -A R # R[storage,metric]
WARNINGS=()
WRK_RUNS=0
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

# ---------------------------------------------------------------- PostgreSQL
start_postgres() {
  PGDIR=$(mktemp -d /tmp/crm-bench-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "as root, PostgreSQL runs as the OS user postgres, which does not exist"
    chown postgres: "$PGDIR"
  fi
  log "PostgreSQL: initdb in $PGDIR"
  as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions \
    >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
  # Unix socket only (no TCP), default durability (fsync, synchronous commits).
  as_pg "$PGBIN/pg_ctl" start -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
    -o "-k $PGDIR -c listen_addresses='' -p 5432 -c max_connections=200 -c shared_buffers=256MB" >/dev/null ||
    { cat "$PGDIR/server.log" >&2; die "PostgreSQL did not start"; }
  as_pg "$PGBIN/createdb" -h "$PGDIR" -p 5432 -U postgres crm
  as_pg "$PGBIN/createdb" -h "$PGDIR" -p 5432 -U postgres pgbench
  log "PostgreSQL: pgbench -i -s 10"
  as_pg pgbench -i -q -s 10 -h "$PGDIR" -p 5432 -U postgres pgbench >"$WORK/pgbench-init.log" 2>&1 ||
    { cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
  PG_URL="postgres://postgres@localhost/crm?host=$PGDIR&port=5432"
  PG_VERSION=$("$PGBIN/postgres" --version)
}

# ---------------------------------------------------------------- one storage
bench_storage() {
  STORAGE=$1
  local dir=$WORK/$STORAGE url t0
  mkdir -p "$dir/ids"
  log "== $STORAGE: loading $CONTACTS contacts in $COMPANIES companies"
  t0=$EPOCHREALTIME
  case $STORAGE in
    memory)
      start_server memory:// "$dir/server"
      timeout 900 "$BIN/crm-bench-load" --storage memory:// --server "$BASE" --contacts "$CONTACTS" \
        --companies "$COMPANIES" --email "$ADMIN_EMAIL" --password "$ADMIN_PASSWORD" --out "$dir/ids" >&2
      ;;
    sled | postgres)
      if [ "$STORAGE" = sled ]; then url=sled://$dir/db; else url=$PG_URL; fi
      timeout 900 "$BIN/crm-bench-load" --storage "$url" --contacts "$CONTACTS" --companies "$COMPANIES" \
        --email "$ADMIN_EMAIL" --password "$ADMIN_PASSWORD" --out "$dir/ids" >&2
      if [ "$STORAGE" = sled ]; then
        R[$STORAGE,disk]=$(du -sb "$dir/db" | cut -f1)
      fi
      start_server "$url" "$dir/server" --tenant-id "$(cat "$dir/ids/tenant-id")"
      ;;
  esac
  R[$STORAGE,load]=$(awk -v a="$t0" -v b="$EPOCHREALTIME" -v n="$CONTACTS" 'BEGIN {printf "%.1f s (%.0f/s)", b - a, n / (b - a)}')
  R[$STORAGE,rss_loaded]=$(rss_kib "$SERVER_PID")
  sign_in

  local company page1 id
  company=$(head -n1 "$dir/ids/company-ids")
  id=$(head -n1 "$dir/ids/contact-ids")
  api_get "/api/v1/contacts/$id" >/dev/null
  page1="/api/v1/contacts?company_id=$company&limit=50"
  local rows want=$((CONTACTS / COMPANIES < 50 ? CONTACTS / COMPANIES : 50))
  rows=$(api_get "$page1" | grep -o '"first_name":' | wc -l)
  [ "$rows" -ge "$want" ] || die "$STORAGE: the company's first page has $rows contacts, expected $want"
  walk_to_last_page "$page1"
  log "$STORAGE: page 1 has $rows contacts; the company's last page is page $DEEP_PAGE"
  api_get "$page1&sort=-created_at" >/dev/null
  R[$STORAGE,deep_page]=$DEEP_PAGE
  local auth=(-H "Authorization: Bearer $TOKEN")

  # The reads in two halves, A B C … then … C B A: drift (caches warming, other load
  # on the machine) falls on every figure alike; each figure is over both halves.
  local half=$(((DURATION + 1) / 2)) reads=(health by-id pgbench page sorted deep) order name
  order=("${reads[@]}")
  for ((i = ${#reads[@]} - 1; i >= 0; i--)); do order+=("${reads[i]}"); done
  for name in "${order[@]}"; do
    case $name in
      health) run_wrk health "$CONNECTIONS" "$half" /health ;;
      by-id) BENCH_IDS=$dir/ids/contact-ids run_wrk byid "$CONNECTIONS" "$half" / -s "$WORK/by-id.lua" "${auth[@]}" ;;
      pgbench) [ "$STORAGE" != postgres ] || run_pgbench "$half" ;;
      page) run_wrk page "$CONNECTIONS" "$half" "$page1" "${auth[@]}" ;;
      sorted) run_wrk sorted "$CONNECTIONS" "$half" "$page1&sort=-created_at" "${auth[@]}" ;;
      deep) run_wrk deep "$CONNECTIONS" "$half" "$DEEP_PATH" "${auth[@]}" ;;
    esac
  done
  if [ "$STORAGE" = postgres ]; then
    R[postgres,pgbench]=$(awk -v s="${R[postgres,pgbench_sum]}" -v n="${R[postgres,pgbench_n]}" 'BEGIN {printf "%.1f", s / n}')
  fi
  # Creates last (they change the data set), in one run of the whole duration.
  BENCH_IDS=$dir/ids/company-ids run_wrk create "$CREATE_CONNECTIONS" "$DURATION" /api/v1/contacts \
    -s "$WORK/create.lua" "${auth[@]}" -H 'Content-Type: application/json'
  for name in health byid page sorted deep create; do finish "$name"; done
  R[$STORAGE,rss_after]=$(rss_kib "$SERVER_PID")
  stop_server
  rm -rf "$dir/db"
}

# Start-up on an empty sled directory: exec to /health answering 200, and the idle RSS.
bench_startup() {
  local dir=$WORK/startup start
  mkdir -p "$dir/server"
  PORT=$(free_port)
  BASE=http://127.0.0.1:$PORT
  start=$EPOCHREALTIME
  CRM_JWT_SECRET=$JWT_SECRET "$BIN/crm-server" --storage "sled://$dir/db" --bind "127.0.0.1:$PORT" \
    --data-dir "$dir/server" --admin-email "$ADMIN_EMAIL" --admin-password "$ADMIN_PASSWORD" \
    --log-level warn --no-workers --shutdown-grace-secs 2 >"$dir/server/server.out" 2>"$dir/server/server.log" &
  SERVER_PID=$!
  STARTUP=$(wait_health "$dir/server" 60 "$start")
  sleep 1
  STARTUP_RSS=$(rss_kib "$SERVER_PID")
  stop_server
  log "start-up on an empty sled dir: $STARTUP s, idle RSS $(mib "$STARTUP_RSS") MiB"
}

# ---------------------------------------------------------------- run
log "work dir $WORK; storages: $STORAGES; $CONTACTS contacts, $COMPANIES companies, ${DURATION}s runs, $CONNECTIONS connections"
PG_VERSION=""
[[ " $STORAGES " == *" postgres "* ]] && start_postgres
bench_startup
for s in $STORAGES; do
  bench_storage "$s"
done

# ---------------------------------------------------------------- report
cell() { # value [p99] [errors]
  local v
  v=$(num "$1")
  [ -n "${2:-}" ] && v="$v (p99 $2 ms)"
  [ -n "${3:-}" ] && v="$v **ERRORS: $3**"
  printf '%s' "$v"
}
row() { # label, then one cell per storage
  local label=$1 line
  shift
  line="| $label |"
  for c in "$@"; do line="$line $c |"; done
  echo "$line"
}
per() { # metric-function → cells for each storage
  local f=$1 s out=()
  for s in $STORAGES; do out+=("$($f "$s")"); done
  printf '%s\n' "${out[@]}"
}
metric() { local s=$2; cell "${R[$s,$1]:-}" "${R[$s,${1}_p99]:-}" "${R[$s,${1}_err]:-}"; }
emit() { # label metric-fn
  local label=$1 f=$2 cells
  mapfile -t cells < <(per "$f")
  row "$label" "${cells[@]}"
}

c_health() { metric health "$1"; }
c_byid() { metric byid "$1"; }
c_page() { metric page "$1"; }
c_sorted() { metric sorted "$1"; }
c_deep() { printf 'page %s: %s' "${R[$1,deep_page]:-?}" "$(metric deep "$1")"; }
c_create() { metric create "$1"; }
c_pgbench() { if [ "$1" = postgres ]; then num "${R[$1,pgbench]:-}"; else printf '—'; fi; }
c_r_byid() { ratio "${R[$1,byid]:-}" "${R[$1,health]:-}"; }
c_r_page() { ratio "${R[$1,page]:-}" "${R[$1,health]:-}"; }
c_r_sorted() { ratio "${R[$1,sorted]:-}" "${R[$1,page]:-}"; }
c_r_deep() { ratio "${R[$1,deep]:-}" "${R[$1,page]:-}"; }
c_r_pg() { if [ "$1" = postgres ]; then ratio "${R[$1,byid]:-}" "${R[$1,pgbench]:-}"; else printf '—'; fi; }
c_rss_loaded() { printf '%s' "$(mib "${R[$1,rss_loaded]}")"; }
c_rss_after() { printf '%s' "$(mib "${R[$1,rss_after]}")"; }
c_disk() { if [ -n "${R[$1,disk]:-}" ]; then awk -v b="${R[$1,disk]}" -v n="$CONTACTS" 'BEGIN {printf "%.0f (%.1f MiB)", b / n, b / 1048576}'; else printf '—'; fi; }
c_load() { printf '%s' "${R[$1,load]}"; }
c_startup() { if [ "$1" = sled ]; then awk -v s="$STARTUP" -v k="$STARTUP_RSS" 'BEGIN {printf "%.0f ms, idle RSS %.0f MiB", s * 1000, k / 1024}'; else printf '—'; fi; }

elapsed=$(awk -v a="$BENCH_STARTED" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", b - a}')
commit=$(git -C "$ROOT" rev-parse --short HEAD)
[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ] || commit="$commit (with uncommitted changes)"
echo
echo "## crm-server bench ($(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "- commit: $commit"
echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r), $(awk '/^MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
echo "- data: $CONTACTS contacts in $COMPANIES companies ($((CONTACTS / COMPANIES)) per company), each with its audit entry"
echo "- load: wrk -t2 -c$CONNECTIONS on the same machine as the server, each read ${DURATION}s in two interleaved halves (order A B C … C B A; p99: the worse half); creates: one -c$CREATE_CONNECTIONS run of ${DURATION}s after the reads; rate limits raised out of the way; logs at warn"
echo "- start-up: exec to /health answering 200 on an empty sled dir (bootstrapping the tenant and its argon2id admin hash): $(awk -v s="$STARTUP" 'BEGIN {printf "%.0f", s * 1000}') ms; idle RSS then $(mib "$STARTUP_RSS") MiB"
[ -n "$PG_VERSION" ] && echo "- PostgreSQL: $PG_VERSION, unix socket, fsync and synchronous_commit on, shared_buffers 256MB; pgbench -S -c16 -j2 at scale 10, interleaved with the reads like them"
echo "- whole run: ${elapsed} s; load average at start $LOAD_AT_START, at end $(cut -d" " -f1-3 /proc/loadavg) (other processes share the CPUs)"
echo
header="| requests/s (p99) |"
sep="|---|"
for s in $STORAGES; do
  header="$header $s |"
  sep="$sep---|"
done
echo "$header"
echo "$sep"
emit "GET /health" c_health
emit "GET /contacts/{id} (random of the loaded)" c_byid
emit "company page of 50 (\`company_id=…&limit=50\`)" c_page
emit "same page \`sort=-created_at\`" c_sorted
emit "company's last page (cursor walked)" c_deep
emit "POST /contacts, 16 connections (creates/s)" c_create
[[ " $STORAGES " == *" postgres "* ]] && emit "pgbench -S tps (same PostgreSQL)" c_pgbench
emit "**ratio** by id ÷ /health" c_r_byid
emit "**ratio** page ÷ /health" c_r_page
emit "**ratio** sorted ÷ default page" c_r_sorted
emit "**ratio** last page ÷ page 1" c_r_deep
[[ " $STORAGES " == *" postgres "* ]] && emit "**ratio** by id ÷ pgbench -S" c_r_pg
emit "server RSS after load and start (MiB)" c_rss_loaded
emit "server RSS after the runs (MiB)" c_rss_after
emit "sled bytes on disk per contact" c_disk
emit "load time (sled/PostgreSQL: bulk commits; memory: HTTP, 32 in flight)" c_load
emit "start-up to /health, empty sled dir" c_startup
echo
if [ ${#WARNINGS[@]} -gt 0 ]; then
  echo "**WARNING: requests failed during the bench; the figures above are not clean:**"
  for w in "${WARNINGS[@]}"; do echo "- $w"; done
else
  echo "No non-2xx responses or socket errors in any run."
fi
