#!/usr/bin/env bash
# The whole test suite: the README's test command, and what CI runs after fmt and clippy.
# Installs what it needs on a fresh machine, runs the doc tests and the example, then
# every crate's tests, and says how many conformance cases ran on which storage adapter,
# session store, rate limiter and job queue.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest not found: installing it" >&2
    cargo install cargo-nextest --locked
fi

# PostgreSQL server binaries: the PostgreSQL adapter's tests start throwaway servers
# (unless CRM_TEST_DATABASE_URL names one). Debian's package provides initdb, pg_ctl,
# pgbench and the pg_trgm extension.
if [ -z "${CRM_TEST_DATABASE_URL:-}" ] && ! command -v initdb >/dev/null 2>&1 \
    && [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    echo "PostgreSQL server binaries not found: installing postgresql" >&2
    sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq postgresql >/dev/null
fi
# Redis: crm-cache-redis's tests start a throwaway redis-server per test process
# (unless CRM_TEST_REDIS_URL names one).
if [ -z "${CRM_TEST_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server not found: installing redis-server" >&2
    sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq redis-server >/dev/null
fi
# An SMTP server: the email tests start Python's aiosmtpd (Debian's python3-aiosmtpd,
# in the system interpreter; CRM_TEST_PYTHON names another one that has it).
if ! "${CRM_TEST_PYTHON:-/usr/bin/python3}" -c 'import aiosmtpd' >/dev/null 2>&1; then
    echo "aiosmtpd not found: installing python3-aiosmtpd" >&2
    sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq python3-aiosmtpd >/dev/null
fi
command -v npm >/dev/null 2>&1 || { echo "npm not found: installing nodejs and npm (crm-http's TypeScript client check)" >&2; if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; fi; }

# Doc tests (crm-core's include the README's code blocks) and the embedding example.
cargo test -p crm-core --doc --quiet
cargo run --quiet -p crm-examples --bin quickstart

tests=$(cargo nextest list --workspace --message-format oneline 2>/dev/null)
# Cases per implementation of one suite: test names `<module>::<implementation>::<case>`
# whose module matches $2, without the suite's own check $3 (`_` shows as `-`).
count_cases() {
    echo "$1"
    grep -oE "(^| )$2::[a-z0-9_]+::[a-z0-9_]+\$" <<<"$tests" \
        | grep -v "::$3\$" \
        | awk -F'::' '{gsub("_", "-", $2); count[$2]++} END {for (a in count) printf "  %-16s %d cases\n", a, count[a]}' \
        | sort
}
count_cases "Conformance cases per storage adapter:" 'conformance_[a-z0-9_]+' suite_runs_on_the_named_adapter
count_cases "SessionStore cases per implementation:" session_store_suite suite_runs_on_the_named_implementation
count_cases "RateLimiter cases per implementation:" rate_limiter_suite suite_runs_on_the_named_implementation
count_cases "StreakStore cases per implementation:" streak_store_suite suite_runs_on_the_named_implementation
count_cases "JobQueue cases per implementation:" job_queue_suite suite_runs_on_the_named_implementation
count_cases "Lease cases per implementation:" lease_suite suite_runs_on_the_named_implementation

# Every test of every crate; its summary is the run's last word.
cargo nextest run --workspace --no-fail-fast
