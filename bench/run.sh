#!/usr/bin/env bash
# bench/run.sh: the benchmark suite in one command.
#
#   bash bench/run.sh            # full run (about 18 minutes on the 2-core machine)
#   bash bench/run.sh --quick    # small sizes, one run each (under 2 minutes)
#
# Builds gatewatch and gatewatch-bench in release mode, runs the suite on fresh
# temporary stores on 127.0.0.1, runs the same workload against the Postgres
# reference design (installed from Debian's packages when missing, a throwaway
# cluster on loopback, torn down at the end), and prints a Markdown report that is
# also written to --out. See bench/README.md for what is measured and how.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE_STARTED=$(date +%s)

usage() {
    cat <<'EOF'
usage: bash bench/run.sh [--quick] [options]

  --quick           small sizes and one run of each measurement (under 2 minutes)
  --no-postgres     skip the PostgreSQL reference run
  --no-build        use the binaries already in target/release
  --sizes A,B       stored-event counts for the query figures (default 1000000,10000000;
                    --quick: 100000,300000); B may be scaled down to fit --budget-min
  --runs N          repetitions of each ingest measurement; the median is reported
                    (default 3; --quick: 1)
  --budget-min M    time budget of the whole run in minutes (default 30; --quick: 2)
  --out FILE        also write the report there (default target/bench/report.md)
  --keep            keep the temporary stores and raw outputs (the path is printed)
  -h, --help        this text
EOF
}

ORIG_ARGS="$*"
QUICK=0 PG=1 BUILD=1 KEEP=0 SIZES="" RUNS="" BUDGET_MIN="" OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-postgres) PG=0 ;;
        --no-build) BUILD=0 ;;
        --keep) KEEP=1 ;;
        --sizes) SIZES=${2:?--sizes needs a value}; shift ;;
        --runs) RUNS=${2:?--runs needs a value}; shift ;;
        --budget-min) BUDGET_MIN=${2:?--budget-min needs a value}; shift ;;
        --out) OUT=${2:?--out needs a value}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [[ $QUICK == 1 ]]; then
    : "${SIZES:=100000,300000}" "${RUNS:=1}" "${BUDGET_MIN:=2}"
    INGEST_S=3 WARMUP_S=1 QUERY_REQ=50 STARTUPS=1 PG_QUERY_RUNS=3 LOAD_S=3
else
    : "${SIZES:=1000000,10000000}" "${RUNS:=3}" "${BUDGET_MIN:=30}"
    INGEST_S=10 WARMUP_S=2 QUERY_REQ=200 STARTUPS=3 PG_QUERY_RUNS=5 LOAD_S=10
fi
SIZE1=${SIZES%%,*}
SIZE2=${SIZES##*,}
REQUESTED_SIZE2=$SIZE2
for v in "$SIZE1" "$SIZE2" "$RUNS" "$BUDGET_MIN"; do
    [[ $v =~ ^[0-9]+$ && $v -gt 0 ]] || { echo "not a positive integer: $v" >&2; exit 2; }
done
((SIZE2 > SIZE1)) || { echo "--sizes: the second size must be larger than the first" >&2; exit 2; }

# The workload, the same for both systems.
CONNS=64            # keep-alive connections (gatewatch) / sessions (Postgres) for ingest
BATCH=1000          # events per request in the batched ingest
BATCH_CONNS=8       # connections for the batched ingest
POOL_EVENTS=200000  # distinct pre-built events the ingest runs cycle through
FILL_BATCH=5000 FILL_CONNS=4
SEED1=42            # the first SIZE1 events; then chunks of CHUNK events, seeds 43, 44, …
DAYS=7              # the API accepts ts within the last 7 days
STATS_PATH='/api/v1/tenants/default/stats?range=30d'
EVENTS_PATH='/api/v1/tenants/default/events?limit=50&type=token.issued'
TIMESERIES_PATH='/api/v1/tenants/default/timeseries?range=30d&interval=hour&group_by=type'
TOP_PATH='/api/v1/tenants/default/top?dim=client_id&range=30d&limit=10'
# Query name → path: the four above, then the high-cardinality /top dimensions and /events
# by one user (issue 3's targets: /top ≤ 20 ms, /events with one filter ≤ 10 ms).
declare -A QUERY_PATHS=(
    [stats]=$STATS_PATH [timeseries]=$TIMESERIES_PATH [top]=$TOP_PATH [events]=$EVENTS_PATH
    [top_users]='/api/v1/tenants/default/top?dim=user_id&range=30d&limit=10'
    [top_ips]='/api/v1/tenants/default/top?dim=ip&range=30d&limit=10'
    [top_tokens]='/api/v1/tenants/default/top?dim=token&range=30d&limit=10'
    [top_ips_24h]='/api/v1/tenants/default/top?dim=ip&range=24h&limit=10'
    [top_users_24h]='/api/v1/tenants/default/top?dim=user_id&range=24h&limit=10'
    [top_tokens_24h]='/api/v1/tenants/default/top?dim=token&range=24h&limit=10'
    [top_routes]='/api/v1/tenants/default/top?dim=route&range=30d&limit=10'
    [top_routes_24h]='/api/v1/tenants/default/top?dim=route&range=24h&limit=10'
    [events_user]='/api/v1/tenants/default/events?limit=50&user_id=user-000777'
)
QUERY_NAMES=(stats timeseries top events top_users top_ips top_tokens top_ips_24h top_users_24h
    top_tokens_24h top_routes top_routes_24h events_user)

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
for tool in curl jq awk; do
    command -v "$tool" >/dev/null || die "$tool is required (apt-get install -y $tool)"
done

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GW=$TARGET_DIR/release/gatewatch
GB=$TARGET_DIR/release/gatewatch-bench
: "${OUT:=$TARGET_DIR/bench/report.md}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatewatch-bench.XXXXXX")
declare -A R=()   # every figure, by name
NOTES=()          # lines for the report's notes
SERVER_PID=""
PG_STARTED=0 PGWORK="" PG_USER="" PG_BIN=""

# ---------------------------------------------------------------- helpers

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $PG_STARTED == 1 ]]; then
        pg_as "$PG_BIN/pg_ctl" -D "$PGWORK/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    [[ -n $PGWORK ]] && rm -rf "$PGWORK"
    if [[ $KEEP == 1 ]]; then
        log "kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

elapsed_s() { echo $(($(date +%s) - SUITE_STARTED)); }
now_ns() { date +%s%N; }

# A TCP port on 127.0.0.1 that nothing listens on.
free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 12000)) # below Linux's ephemeral range (32768-)
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

# median: of the numbers on stdin, one a line.
median() {
    sort -g | awk '{a[NR] = $1} END {
        if (NR == 0) print "nan";
        else if (NR % 2) print a[(NR + 1) / 2];
        else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# percentile P (0-100) of the numbers on stdin (nearest rank).
percentile() {
    sort -g | awk -v p="$1" '{a[NR] = $1} END {
        if (NR == 0) { print "nan"; exit }
        r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR;
        print a[r] }'
}

calc() { awk "BEGIN { printf \"%.6g\", $* }"; }

# 1234567.8 -> 1,234,568
int_fmt() {
    awk -v x="$1" 'BEGIN {
        if (x == "" || x == "nan") { print "n/a"; exit }
        s = sprintf("%.0f", x); neg = (s ~ /^-/); if (neg) s = substr(s, 2);
        out = ""; while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
        print (neg ? "-" : "") s out }'
}

# milliseconds with 3 significant-ish decimals
ms_fmt() {
    awk -v x="$1" 'BEGIN {
        if (x == "" || x == "nan" || x == "na") { print "n/a"; exit }
        if (x >= 100) printf "%.0f ms", x; else if (x >= 10) printf "%.1f ms", x;
        else if (x >= 1) printf "%.2f ms", x; else printf "%.3f ms", x }'
}

mib_fmt() { awk -v x="$1" 'BEGIN { if (x == "" || x == "nan") print "n/a"; else printf "%.0f MiB", x / 1024 }'; }

# ratio "a / b" formatted, with the plain-words reading in parentheses
ratio_fmt() { # value word_if_gt1 word_if_lt1
    awk -v r="$1" -v up="$2" -v down="$3" 'BEGIN {
        if (r == "" || r == "nan" || r == "inf") { print "n/a"; exit }
        if (r >= 1) printf "%.3g (%.3g× %s)", r, r, up; else printf "%.3g (%.3g× %s)", r, 1 / r, down }'
}

size_label() { awk -v n="$1" 'BEGIN { if (n >= 1e6) printf "%g M", n / 1e6; else printf "%g k", n / 1e3 }'; }

# ------------------------------------------------------- gatewatch server

# start_server DIR NAME: starts `gatewatch serve` on a free port, waits for /readyz,
# sets SERVER_PID, PORT, URL and STARTUP_MS (spawn to first 200 from /readyz).
start_server() {
    local dir=$1 name=$2 t0 code
    PORT=$(free_port)
    URL="http://127.0.0.1:$PORT"
    t0=$(now_ns)
    "$GW" serve --data "$dir" --listen "127.0.0.1:$PORT" >>"$WORK/serve-$name.log" 2>&1 &
    SERVER_PID=$!
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/readyz" || true)
        [[ $code == 200 ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null ||
            die "gatewatch serve exited before it was ready: $(tail -n 5 "$WORK/serve-$name.log")"
        (($(now_ns) - t0 < 120000000000)) || die "gatewatch not ready after 120 s"
        sleep 0.005
    done
    STARTUP_MS=$(calc "($(now_ns) - $t0) / 1e6")
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || die "gatewatch serve did not exit cleanly (status $?)"
    SERVER_PID=""
}

# peak and current RSS (KiB) of the running server
vm_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SERVER_PID/status"; }

# the apparent size of the store directory's files, and the blocks they take on disk:
# redb grows its file by up to double (at most 4 GiB) and writes only the pages it uses,
# so a growing store's file is sparse
store_bytes() { du -sb "$1" | awk '{print $1}'; }
store_blocks_bytes() { du -s -B1 "$1" | awk '{print $1}'; }

init_store() { # DIR -> sets INGEST_KEY, ADMIN_TOKEN
    "$GW" init --data "$1" --json >"$1.json"
    INGEST_KEY=$(jq -r .ingest_key "$1.json")
    ADMIN_TOKEN=$(jq -r .owner_token "$1.json")
}

# http_status PATH: the status of one authorised GET
http_status() {
    curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" "$URL$1" || true
}

# gw_queries TAG: query latencies of the implemented read endpoints into R[TAG.*]
gw_queries() {
    local tag=$1 name path args=() out
    for name in "${QUERY_NAMES[@]}"; do
        path=${QUERY_PATHS[$name]}
        case $(http_status "$path") in
            200) args+=(--path "$path") ;;
            404) R[$tag.$name.p50]=na R[$tag.$name.p99]=na ;; # not routed yet
            *) die "GET $path: $(curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$URL$path")" ;;
        esac
    done
    out=$WORK/query-$tag.json
    "$GB" query --url "$URL" --admin-token "$ADMIN_TOKEN" --requests "$QUERY_REQ" --warmup 5 \
        "${args[@]}" --json >"$out"
    for name in "${QUERY_NAMES[@]}"; do
        [[ ${R[$tag.$name.p50]:-} == na ]] && continue
        path=${QUERY_PATHS[$name]}
        R[$tag.$name.p50]=$(jq -r --arg p "$path" '.paths[] | select(.path == $p) | .latency_ms.p50' "$out")
        R[$tag.$name.p99]=$(jq -r --arg p "$path" '.paths[] | select(.path == $p) | .latency_ms.p99' "$out")
    done
}

# gw_fill N SEED: loads N more events through the API; sets FILL_S (seconds taken)
gw_fill() {
    local n=$1 seed=$2 out=$WORK/fill-$2.json
    "$GB" fill --url "$URL" --key "$INGEST_KEY" --events "$n" --days "$DAYS" --seed "$seed" \
        --now-ms "$NOW_MS" --batch "$FILL_BATCH" --connections "$FILL_CONNS" --json >"$out"
    [[ $(jq -r '.ok and .accepted == .events' "$out") == true ]] || die "fill failed: $(cat "$out")"
    FILL_S=$(jq -r .elapsed_s "$out")
}

# ------------------------------------------------------------- Postgres

pg_as() { # runs a server-side command as the cluster's (non-root) owner
    if [[ $(id -u) == 0 ]]; then
        (cd / && runuser -u "$PG_USER" -- "$@")
    else
        "$@"
    fi
}
psql() { "$PG_BIN/psql" "$@"; }
pgbench() { "$PG_BIN/pgbench" "$@"; }

pg_setup() {
    local bindir
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z $bindir || ! -x $bindir/initdb || ! -x $bindir/pg_ctl || ! -x $bindir/pgbench ]]; then
        log "PostgreSQL is missing: installing it from Debian's packages"
        local sudo=()
        [[ $(id -u) == 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get update
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
        bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    PG_BIN=$bindir
    if [[ $(id -u) == 0 ]]; then
        PG_USER=postgres
        id -u "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$PG_USER"
    else
        PG_USER=$(id -un)
    fi
    PGWORK=$(mktemp -d "${TMPDIR:-/tmp}/gatewatch-bench-pg.XXXXXX")
    chmod 755 "$PGWORK"
    [[ $(id -u) == 0 ]] && chown "$PG_USER" "$PGWORK"
    PGPORT=$(free_port)
    PGPASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    printf '%s\n' "$PGPASSWORD" >"$PGWORK/pw"
    [[ $(id -u) == 0 ]] && chown "$PG_USER" "$PGWORK/pw"
    pg_as "$PG_BIN/initdb" -D "$PGWORK/data" -U bench --pwfile="$PGWORK/pw" -E UTF8 --locale=C \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$WORK/initdb.log" 2>&1 ||
        die "initdb failed: $(tail -n 5 "$WORK/initdb.log")"
    rm -f "$PGWORK/pw"
    # Only where it listens changes; durability and memory settings stay the defaults.
    pg_as tee -a "$PGWORK/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGWORK'
EOF
    export PGHOST=127.0.0.1 PGPORT PGUSER=bench PGPASSWORD PGDATABASE=postgres
    pg_start
    psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE gwbench' >/dev/null
    export PGDATABASE=gwbench
    psql -X -q -v ON_ERROR_STOP=1 -f "$ROOT/bench/pg/schema.sql" >/dev/null
    R[pg.version]=$(psql -X -At -c 'SHOW server_version')
    R[pg.settings]=$(psql -X -At -F ' ' -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
        FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'wal_sync_method', 'shared_buffers',
        'full_page_writes', 'commit_delay', 'max_wal_size', 'work_mem', 'max_parallel_workers_per_gather')")
    log "PostgreSQL ${R[pg.version]} on 127.0.0.1:$PGPORT (${R[pg.settings]})"
}

pg_start() {
    pg_as "$PG_BIN/pg_ctl" -D "$PGWORK/data" -l "$PGWORK/server.log" -w start >/dev/null ||
        die "pg_ctl start failed: $(tail -n 5 "$PGWORK/server.log" 2>/dev/null)"
    PG_STARTED=1
}

pg_stop() {
    pg_as "$PG_BIN/pg_ctl" -D "$PGWORK/data" -m fast -w stop >/dev/null
    PG_STARTED=0
}

pg_sql() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }

# pg_copy N SEED [--no-ts] [TABLE]: COPYs N generated events; sets COPY_S (seconds)
pg_copy() {
    local n=$1 seed=$2 table=${4:-audit_logs} t0 t1 extra=()
    [[ ${3:-} == --no-ts ]] && extra=(--no-ts)
    t0=$(now_ns)
    "$GB" pg-csv --events "$n" --days "$DAYS" --seed "$seed" --now-ms "$NOW_MS" "${extra[@]}" |
        psql -X -q -v ON_ERROR_STOP=1 \
            -c "\\copy $table (user_id, action, resource_type, resource_id, details, created_at) FROM pstdin (FORMAT csv)" >/dev/null
    t1=$(now_ns)
    COPY_S=$(calc "($t1 - $t0) / 1e9")
}

# pgbench_latencies PREFIX -> "p50 p99 p999 count" in ms, from pgbench -l logs
pgbench_latencies() {
    local files=("$1".[0-9]*)
    cat "${files[@]}" | awk '{print $3 / 1000}' >"$1.lat"
    printf '%s %s %s %s\n' "$(percentile 50 <"$1.lat")" "$(percentile 99 <"$1.lat")" \
        "$(percentile 99.9 <"$1.lat")" "$(wc -l <"$1.lat")"
}

# pg_query TAG NAME SCRIPT: median (and max) latency of one query, sequential
pg_query() {
    local tag=$1 name=$2 script=$3 prefix=$WORK/pgb-$1-$2
    pgbench -n -c 1 -t 1 -f "$script" >/dev/null 2>&1 # warm-up, not counted
    pgbench -n -c 1 -t "$PG_QUERY_RUNS" -f "$script" -l --log-prefix="$prefix" \
        >"$prefix-out.txt" 2>&1 || die "pgbench $name failed: $(tail -n 5 "$prefix-out.txt")"
    local lat
    read -r lat _ <<<"$(pgbench_latencies "$prefix")"
    R[$tag.$name.p50]=$lat
    R[$tag.$name.max]=$(percentile 100 <"$prefix.lat")
}

# pg_dataset TAG: vacuum, measure disk and queries of the stored rows
pg_dataset() {
    local tag=$1 t0
    t0=$(now_ns)
    pg_sql 'VACUUM (ANALYZE) audit_logs' >/dev/null
    R[$tag.vacuum_s]=$(calc "($(now_ns) - $t0) / 1e9")
    R[$tag.rows]=$(pg_sql 'SELECT count(*) FROM audit_logs')
    R[$tag.bytes]=$(pg_sql "SELECT pg_total_relation_size('audit_logs')")
    R[$tag.table_bytes]=$(pg_sql "SELECT pg_relation_size('audit_logs') + coalesce(pg_total_relation_size(reltoastrelid), 0) FROM pg_class WHERE relname = 'audit_logs'")
    R[$tag.disk_per_event]=$(calc "${R[$tag.bytes]} / ${R[$tag.rows]}")
    pg_query "$tag" stats "$ROOT/bench/pg/stats.sql"
    pg_query "$tag" events "$ROOT/bench/pg/events.sql"
    R[$tag.stats_result]=$(pg_sql "SELECT row_to_json(s) FROM get_token_stats(now() - interval '30 days', now()) s")
}

# =========================================================== the suite

NOW_MS=$(($(date +%s%3N)))
# /top over the three whole days up to the hour after NOW_MS: about 3/7 of the events, less
# than half, so the running totals do not serve it and every entry of those days is
# counted: the slowest kind of /top (issue 3: ≤ 20 ms).
hour_iso() { date -u -d "@$(($1 / 3600 * 3600))" +%Y-%m-%dT%H:%M:%SZ; }
TO_3D=$((NOW_MS / 1000 + 3600))
RANGE_3D="from=$(hour_iso $((TO_3D - 3 * 86400)))&to=$(hour_iso $TO_3D)"
QUERY_PATHS[top_ips_3d]="/api/v1/tenants/default/top?dim=ip&$RANGE_3D&limit=10"
QUERY_PATHS[top_routes_3d]="/api/v1/tenants/default/top?dim=route&$RANGE_3D&limit=10"
QUERY_NAMES+=(top_ips_3d top_routes_3d)
COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -c . || true)
DIRTY_LIST=$(git -C "$ROOT" status --porcelain 2>/dev/null | awk '{print $2}' | paste -sd' ' || true)
CMDLINE="bash bench/run.sh${ORIG_ARGS:+ $ORIG_ARGS}"
log "work dir $WORK; sizes $SIZE1 and $SIZE2; $RUNS run(s) each; budget $BUDGET_MIN min"

if [[ $BUILD == 1 ]]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --bin gatewatch --bin gatewatch-bench) >&2
fi
[[ -x $GW && -x $GB ]] || die "missing $GW or $GB (build first or drop --no-build)"
# Run copies, so that a rebuild in the worktree during the run cannot change them.
mkdir -p "$WORK/bin"
cp "$GW" "$GB" "$WORK/bin/"
GW=$WORK/bin/gatewatch GB=$WORK/bin/gatewatch-bench

# ---- 1. ingest throughput and ack latency (fresh store)
log "ingest: $RUNS × (single events, $CONNS connections; batches of $BATCH, $BATCH_CONNS connections), ${INGEST_S}s each"
init_store "$WORK/ingest"
start_server "$WORK/ingest" ingest
for run in $(seq 1 "$RUNS"); do
    for mode in single batch; do
        out=$WORK/ingest-$mode-$run.json
        if [[ $mode == single ]]; then conns=$CONNS; else conns=$BATCH_CONNS; fi
        "$GB" ingest --url "$URL" --key "$INGEST_KEY" --mode "$mode" --batch "$BATCH" \
            --connections "$conns" --duration-s "$INGEST_S" --warmup-s "$WARMUP_S" \
            --pool-events "$POOL_EVENTS" --json >"$out"
        log "  $mode run $run: $(jq -r '"\(.events_per_s) events/s, p99 \(.latency_ms.p99) ms, failed \(.requests_failed)"' "$out")"
    done
done
for mode in single batch; do
    R[gw.ingest.$mode.eps]=$(jq -r .events_per_s "$WORK"/ingest-$mode-*.json | median)
    for p in p50 p99 p999; do
        R[gw.ingest.$mode.$p]=$(jq -r ".latency_ms.$p" "$WORK"/ingest-$mode-*.json | median)
    done
    R[gw.ingest.$mode.runs]=$(jq -r '.events_per_s | floor' "$WORK"/ingest-$mode-*.json | paste -sd' ')
    R[gw.ingest.$mode.failed]=$(jq -s 'map(.requests_failed) | add' "$WORK"/ingest-$mode-*.json)
done
stop_server
rm -rf "$WORK/ingest"

# ---- 2. Postgres: per-event INSERT, then the first data set
if [[ $PG == 1 ]]; then
    pg_setup
    log "postgres: loading the $POOL_EVENTS-event pool the INSERTs copy from"
    pg_copy "$POOL_EVENTS" "$SEED1" --no-ts bench_pool
    pg_sql 'VACUUM (ANALYZE) bench_pool' >/dev/null
    log "postgres: $RUNS × one INSERT per event in its own transaction, $CONNS sessions, ${INGEST_S}s"
    for run in $(seq 1 "$RUNS"); do
        prefix=$WORK/pgb-insert-$run
        pgbench -n -M prepared -c "$CONNS" -j 2 -T "$WARMUP_S" -D pool="$POOL_EVENTS" \
            -f "$ROOT/bench/pg/insert.sql" >/dev/null 2>&1 || die "pgbench warm-up failed"
        pgbench -n -M prepared -c "$CONNS" -j 2 -T "$INGEST_S" -D pool="$POOL_EVENTS" \
            -f "$ROOT/bench/pg/insert.sql" -l --log-prefix="$prefix" >"$prefix-out.txt" 2>&1 ||
            die "pgbench failed: $(tail -n 5 "$prefix-out.txt")"
        tps=$(awk '/^tps = / {print $3; exit}' "$prefix-out.txt")
        failed=$(awk -F': ' '/number of failed transactions/ {split($2, f, " "); print f[1]; exit}' "$prefix-out.txt")
        read -r p50 p99 p999 _ <<<"$(pgbench_latencies "$prefix")"
        printf '%s %s %s %s %s\n' "$tps" "$p50" "$p99" "$p999" "${failed:-0}" >>"$WORK/pg-insert.txt"
        log "  insert run $run: $tps events/s, p99 $p99 ms"
    done
    R[pg.ingest.eps]=$(awk '{print $1}' "$WORK/pg-insert.txt" | median)
    R[pg.ingest.p50]=$(awk '{print $2}' "$WORK/pg-insert.txt" | median)
    R[pg.ingest.p99]=$(awk '{print $3}' "$WORK/pg-insert.txt" | median)
    R[pg.ingest.p999]=$(awk '{print $4}' "$WORK/pg-insert.txt" | median)
    R[pg.ingest.runs]=$(awk '{printf "%d ", $1}' "$WORK/pg-insert.txt")
    R[pg.ingest.failed]=$(awk '{s += $5} END {print s + 0}' "$WORK/pg-insert.txt")

    log "postgres: COPY of the first data set ($SIZE1 events)"
    pg_sql 'TRUNCATE audit_logs RESTART IDENTITY' >/dev/null
    pg_sql 'CHECKPOINT' >/dev/null
    pg_copy "$SIZE1" "$SEED1"
    R[pg.s1.copy_eps]=$(calc "$SIZE1 / $COPY_S")
    pg_dataset pg.s1
    log "  ${R[pg.s1.rows]} rows, ${R[pg.s1.disk_per_event]} bytes/event, stats p50 ${R[pg.s1.stats.p50]} ms"
    pg_stop
fi

# ---- 3. gatewatch: the first data set
log "gatewatch: fill of the first data set ($SIZE1 events)"
init_store "$WORK/store"
start_server "$WORK/store" store
gw_fill "$SIZE1" "$SEED1"
R[gw.s1.fill_eps]=$(calc "$SIZE1 / $FILL_S")
gw_queries gw.s1
R[gw.s1.bytes]=$(store_bytes "$WORK/store")
R[gw.s1.disk_per_event]=$(calc "${R[gw.s1.bytes]} / $SIZE1")
R[gw.s1.stats_body]=$(curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$URL$STATS_PATH" |
    jq -c '{total_events, total_issued, total_refreshed, total_failed, unique_users, unique_clients}' 2>/dev/null || echo '?')
log "  fill ${R[gw.s1.fill_eps]} events/s, ${R[gw.s1.disk_per_event]} bytes/event, stats p50 ${R[gw.s1.stats.p50]} ms"

# ---- 4. gatewatch: grow to the second size in chunks, as long as the budget allows
# After each chunk, project the rest of the run from the rates measured so far:
# the next chunk, start-up and load, and the Postgres side of the second data set
# (COPY, VACUUM and query runs scale with the rows stored). Stop early, and say so,
# when the next chunk would not fit.
CHUNK=$(((SIZE2 - SIZE1) < SIZE1 ? SIZE2 - SIZE1 : SIZE1))
budget_s=$((BUDGET_MIN * 60))
pg_phase2_s() { # seconds of the Postgres second phase for $1 stored events
    [[ $PG == 1 ]] || { echo 0; return; }
    calc "(($1 - $SIZE1) / ${R[pg.s1.copy_eps]} + ${R[pg.s1.vacuum_s]} * $1 / $SIZE1 \
        + (${R[pg.s1.stats.p50]} + ${R[pg.s1.events.p50]}) / 1000 * ($PG_QUERY_RUNS + 1) * $1 / $SIZE1) * 1.3 + 15"
}
STORED=$SIZE1 FILLED_S=0 chunk_no=0 SEEDS="$SEED1"
log "gatewatch: growing the store to $SIZE2 events in chunks of $CHUNK"
while ((STORED < SIZE2)); do
    n=$((SIZE2 - STORED < CHUNK ? SIZE2 - STORED : CHUNK))
    rate=$(awk -v a="$FILLED_S" -v b="$STORED" -v s1="${R[gw.s1.fill_eps]}" \
        'BEGIN { print (a > 0) ? (b - '"$SIZE1"') / a : s1 }')
    need=$(calc "$n / $rate * 1.3 + ($STARTUPS + 1) * 3 + $LOAD_S + 30 + $(pg_phase2_s $((STORED + n)))")
    left=$((budget_s - $(elapsed_s)))
    # The first chunk always runs, so that there is a second data set to report.
    if ((chunk_no > 0)) && awk -v a="$need" -v b="$left" 'BEGIN { exit !(a > b) }'; then
        NOTES+=("**Scaled down:** $(int_fmt "$REQUESTED_SIZE2") stored events were asked for; at the rates measured in this run, the next chunk of $(int_fmt "$n") and the rest of the run were projected to take $(printf '%.0f' "$need") s with $left s of the ${BUDGET_MIN}-minute budget left, so the second data set stopped at $(int_fmt "$STORED"). DESIGN.md's \"10 M stored\" figures are measured with $(int_fmt "$STORED") here.")
        log "stopping at $STORED events: the next chunk and the rest need ~$(printf '%.0f' "$need")s, ${left}s left"
        break
    fi
    chunk_no=$((chunk_no + 1))
    gw_fill "$n" $((SEED1 + chunk_no))
    FILLED_S=$(calc "$FILLED_S + $FILL_S")
    STORED=$((STORED + n))
    SEEDS+=" $((SEED1 + chunk_no))"
    log "  $STORED stored ($(printf '%.0f' "$(calc "$n / $FILL_S")") events/s for this chunk)"
done
SIZE2=$STORED
CHUNKS=$chunk_no
R[gw.s2.fill_eps]=$(calc "($SIZE2 - $SIZE1) / $FILLED_S")
gw_queries gw.s2
R[gw.s2.bytes]=$(store_bytes "$WORK/store")
R[gw.s2.disk_per_event]=$(calc "${R[gw.s2.bytes]} / $SIZE2")
R[gw.s2.blocks]=$(store_blocks_bytes "$WORK/store")
R[gw.s2.disk_blocks_per_event]=$(calc "${R[gw.s2.blocks]} / $SIZE2")
R[gw.s2.hwm_fill]=$(vm_kib VmHWM)
R[gw.s2.stats_body]=$(curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$URL$STATS_PATH" |
    jq -c '{total_events, total_issued, total_refreshed, total_failed, unique_users, unique_clients}' 2>/dev/null || echo '?')
log "  fill ${R[gw.s2.fill_eps]} events/s, ${R[gw.s2.disk_per_event]} bytes/event, stats p50 ${R[gw.s2.stats.p50]} ms, peak RSS ${R[gw.s2.hwm_fill]} KiB"
stop_server
# The file holds free space redb grew it by (it doubles the file up to 4 GiB); compact
# gives it back, leaving what is stored.
t0=$(now_ns)
"$GW" compact --data "$WORK/store" >/dev/null
R[gw.s2.compact_s]=$(calc "($(now_ns) - $t0) / 1e9")
R[gw.s2.bytes_compacted]=$(store_bytes "$WORK/store")
R[gw.s2.disk_compacted]=$(calc "${R[gw.s2.bytes_compacted]} / $SIZE2")
log "  after gatewatch compact (${R[gw.s2.compact_s]} s): ${R[gw.s2.disk_compacted]} bytes/event"

log "gatewatch: start-up to ready with $SIZE2 stored, $STARTUPS time(s)"
: >"$WORK/startup.txt"
for i in $(seq 1 "$STARTUPS"); do
    start_server "$WORK/store" "startup-$i"
    echo "$STARTUP_MS" >>"$WORK/startup.txt"
    log "  ready after $STARTUP_MS ms"
    ((i < STARTUPS)) && stop_server
done
R[gw.startup_ms]=$(median <"$WORK/startup.txt")
R[gw.startup_runs]=$(awk '{printf "%.0f ", $1}' "$WORK/startup.txt")
R[gw.s2.rss_ready]=$(vm_kib VmRSS)
# Under load on the restarted server: the queries, then single-event ingest.
gw_queries gw.s2r
"$GB" ingest --url "$URL" --key "$INGEST_KEY" --mode single --connections "$CONNS" \
    --duration-s "$LOAD_S" --pool-events "$POOL_EVENTS" --json >"$WORK/load-restarted.json"
R[gw.s2.load_eps]=$(jq -r .events_per_s "$WORK/load-restarted.json")
R[gw.s2.hwm_restarted]=$(vm_kib VmHWM)
log "  restarted: RSS ${R[gw.s2.rss_ready]} KiB when ready, peak ${R[gw.s2.hwm_restarted]} KiB under load"
stop_server

# ---- 6. Postgres: the second data set
if [[ $PG == 1 ]]; then
    pg_start
    log "postgres: COPY to $SIZE2 events"
    copied_s=0
    for i in $(seq 1 "$CHUNKS"); do
        n=$((SIZE1 + i * CHUNK > SIZE2 ? SIZE2 - SIZE1 - (i - 1) * CHUNK : CHUNK))
        pg_copy "$n" $((SEED1 + i))
        copied_s=$(calc "$copied_s + $COPY_S")
    done
    R[pg.s2.copy_eps]=$(calc "($SIZE2 - $SIZE1) / $copied_s")
    pg_dataset pg.s2
    log "  ${R[pg.s2.rows]} rows, ${R[pg.s2.disk_per_event]} bytes/event, stats p50 ${R[pg.s2.stats.p50]} ms"
    pg_stop
fi

# ============================================================ the report

TOTAL_S=$(elapsed_s)
L1=$(size_label "$SIZE1") L2=$(size_label "$SIZE2")
has_pg() { [[ $PG == 1 ]]; }
pgv() { if has_pg; then "$@"; else echo "not run (--no-postgres)"; fi; }
q_cell() { # TAG NAME
    local v=${R[$1.$2.p50]:-}
    if [[ $v == na ]]; then echo "n/a (not implemented)"; else echo "$(ms_fmt "$v") (p99 $(ms_fmt "${R[$1.$2.p99]}"))"; fi
}
# verdict VALUE OP TARGET: "met" / "missed by X %"
verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v == "" || v == "na" || v == "nan") { print "not measured"; exit }
        ok = (op == ">=") ? (v >= t) : (v <= t);
        if (ok && op == ">=") printf "**met**, %.0f %% above the target", (v - t) / t * 100;
        else if (ok) printf "**met**, %.0f %% below the limit", (t - v) / t * 100;
        else if (op == ">=") printf "**missed** by %.0f %% (%.2f× the target)", (t - v) / t * 100, v / t;
        else printf "**missed** by %.0f %% (%.2f× the limit)", (v - t) / t * 100, v / t }'
}
lat3() { echo "$(ms_fmt "$1") / $(ms_fmt "$2") / $(ms_fmt "$3")"; }

{
    echo "# gatewatch benchmark report"
    echo
    echo "- command: \`$CMDLINE\`"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); duration of the run: $((TOTAL_S / 60)) min $((TOTAL_S % 60)) s"
    echo "- commit: \`$COMMIT\`$([[ $DIRTY -gt 0 ]] && echo "; the worktree also had uncommitted changes to: $DIRTY_LIST")"
    echo "- machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -h | awk '/^Mem:/ {print $2}') RAM, Linux $(uname -r), $(rustc --version 2>/dev/null || echo 'rustc ?')"
    has_pg && echo "- PostgreSQL ${R[pg.version]}, throwaway cluster on 127.0.0.1, default settings: ${R[pg.settings]}"
    echo "- data sets: $(int_fmt "$SIZE1") then $(int_fmt "$SIZE2") events of the deterministic mix (seed $SEED1 for the first $(int_fmt "$SIZE1"), then chunks of $(int_fmt "$CHUNK") with seeds ${SEEDS#* }), \`ts\` spread over the last $DAYS days"
    echo
    echo "| figure | gatewatch | PostgreSQL reference | gatewatch / Postgres |"
    echo "| --- | --- | --- | --- |"
    echo "| ingest, single-event requests, $CONNS connections (events/s, median of $RUNS) | $(int_fmt "${R[gw.ingest.single.eps]}") | $(pgv int_fmt "${R[pg.ingest.eps]:-}") (one INSERT per event, autocommit, $CONNS sessions) | $(pgv ratio_fmt "$(calc "${R[gw.ingest.single.eps]} / ${R[pg.ingest.eps]:-1}")" "more" "fewer") |"
    echo "| ingest, batches of $BATCH, $BATCH_CONNS connections (events/s, median of $RUNS) | $(int_fmt "${R[gw.ingest.batch.eps]}") | $(pgv int_fmt "${R[pg.ingest.eps]:-}") (still one INSERT per event) | $(pgv ratio_fmt "$(calc "${R[gw.ingest.batch.eps]} / ${R[pg.ingest.eps]:-1}")" "more" "fewer") |"
    echo "| ack latency p50 / p99 / p99.9, single events | $(lat3 "${R[gw.ingest.single.p50]}" "${R[gw.ingest.single.p99]}" "${R[gw.ingest.single.p999]}") | $(pgv lat3 "${R[pg.ingest.p50]:-}" "${R[pg.ingest.p99]:-}" "${R[pg.ingest.p999]:-}") (INSERT + commit) | |"
    echo "| ack latency p50 / p99 / p99.9, per batch of $BATCH | $(lat3 "${R[gw.ingest.batch.p50]}" "${R[gw.ingest.batch.p99]}" "${R[gw.ingest.batch.p999]}") | | |"
    echo "| bulk load of the data set (events/s; gatewatch: \`fill\`, batches of $FILL_BATCH over $FILL_CONNS connections; Postgres: \`COPY\`) | $(int_fmt "${R[gw.s1.fill_eps]}") to $L1, $(int_fmt "${R[gw.s2.fill_eps]}") to $L2 | $(pgv echo "$(int_fmt "${R[pg.s1.copy_eps]:-}") to $L1, $(int_fmt "${R[pg.s2.copy_eps]:-}") to $L2") | |"
    for tag in s1 s2; do
        if [[ $tag == s1 ]]; then L=$L1; else L=$L2; fi
        echo "| stats over 30 days, $L stored (p50 of $QUERY_REQ; Postgres: \`get_token_stats\`, median of $PG_QUERY_RUNS) | $(q_cell gw.$tag stats) | $(pgv ms_fmt "${R[pg.$tag.stats.p50]:-}") | $(pgv ratio_fmt "$(calc "${R[gw.$tag.stats.p50]} / ${R[pg.$tag.stats.p50]:-1}")" "slower" "faster") |"
        echo "| timeseries, hourly by type, 30 days, $L stored | $(q_cell gw.$tag timeseries) | | |"
        echo "| top 10 clients, 30 days, $L stored | $(q_cell gw.$tag top) | | |"
        echo "| top 10 users / IPs / tokens, 30 days, $L stored | $(q_cell gw.$tag top_users) / $(q_cell gw.$tag top_ips) / $(q_cell gw.$tag top_tokens) | | |"
        echo "| top 10 users / IPs / tokens, 24 hours, $L stored | $(q_cell gw.$tag top_users_24h) / $(q_cell gw.$tag top_ips_24h) / $(q_cell gw.$tag top_tokens_24h) | | |"
        echo "| top 10 routes, 30 days / 24 hours, $L stored | $(q_cell gw.$tag top_routes) / $(q_cell gw.$tag top_routes_24h) | | |"
        echo "| top 10 IPs / routes, the last 3 of the 7 days (\`from\`/\`to\`), $L stored | $(q_cell gw.$tag top_ips_3d) / $(q_cell gw.$tag top_routes_3d) | | |"
        echo "| events, newest 50 of one user, $L stored | $(q_cell gw.$tag events_user) | | |"
        echo "| events, newest 50 \`token.issued\`, $L stored | $(q_cell gw.$tag events) | $(pgv ms_fmt "${R[pg.$tag.events.p50]:-}") | $(pgv ratio_fmt "$(calc "${R[gw.$tag.events.p50]} / ${R[pg.$tag.events.p50]:-1}")" "slower" "faster") |"
        echo "| disk bytes per event, $L stored (gatewatch: the store directory; Postgres: \`pg_total_relation_size\`, table + TOAST + 3 indexes) | $(int_fmt "${R[gw.$tag.disk_per_event]}") | $(pgv int_fmt "${R[pg.$tag.disk_per_event]:-}") | $(pgv ratio_fmt "$(calc "${R[gw.$tag.disk_per_event]} / ${R[pg.$tag.disk_per_event]:-1}")" "larger" "smaller") |"
    done
    echo "| disk bytes per event, $L2 stored, after \`gatewatch compact\` (server stopped; took $(printf '%.1f' "${R[gw.s2.compact_s]}") s) | $(int_fmt "${R[gw.s2.disk_compacted]}") | | |"
    echo "| stats over 30 days, $L2 stored, just after a restart | $(q_cell gw.s2r stats) | | |"
    echo "| events, newest 50 \`token.issued\`, $L2 stored, just after a restart | $(q_cell gw.s2r events) | | |"
    echo "| peak RSS (VmHWM) of the server that loaded $L2 and answered the queries | $(mib_fmt "${R[gw.s2.hwm_fill]}") | | |"
    echo "| RSS with $L2 stored: when ready / peak under queries + ${LOAD_S}s of single-event ingest ($(int_fmt "${R[gw.s2.load_eps]}") events/s) | $(mib_fmt "${R[gw.s2.rss_ready]}") / $(mib_fmt "${R[gw.s2.hwm_restarted]}") | | |"
    echo "| start-up to ready with $L2 stored (median of $STARTUPS: ${R[gw.startup_runs]% }ms) | $(ms_fmt "${R[gw.startup_ms]}") | | |"
    echo "| \`/check\` decisions | n/a (not implemented) | | |"
    echo
    echo "Ingest runs (events/s): gatewatch single ${R[gw.ingest.single.runs]}; batched ${R[gw.ingest.batch.runs]}$(has_pg && echo "; Postgres ${R[pg.ingest.runs]% }"). Failed requests: gatewatch ${R[gw.ingest.single.failed]} single, ${R[gw.ingest.batch.failed]} batched$(has_pg && echo ", Postgres ${R[pg.ingest.failed]} transactions")."
    echo
    echo "## DESIGN.md performance budget"
    echo
    M=$(echo "${R[gw.s2.hwm_fill]} ${R[gw.s2.hwm_restarted]}" | awk '{print ($1 > $2 ? $1 : $2) / 1024}')
    at10="with $L2 stored"
    echo "| target | measured | verdict |"
    echo "| --- | --- | --- |"
    echo "| single-event ingest, 64 connections ≥ 50,000 events/s | $(int_fmt "${R[gw.ingest.single.eps]}") | $(verdict "${R[gw.ingest.single.eps]}" ">=" 50000) |"
    echo "| single-event ingest p99 ack ≤ 10 ms | $(ms_fmt "${R[gw.ingest.single.p99]}") | $(verdict "${R[gw.ingest.single.p99]}" "<=" 10) |"
    echo "| batches of 1,000 ≥ 300,000 events/s | $(int_fmt "${R[gw.ingest.batch.eps]}") | $(verdict "${R[gw.ingest.batch.eps]}" ">=" 300000) |"
    echo "| \`/check\` ≥ 50,000/s, p99 ≤ 2 ms | n/a | not measured (not implemented) |"
    echo "| \`/stats\` 30 days, 10 M stored: p50 ≤ 5 ms | $(ms_fmt "${R[gw.s2.stats.p50]}") $at10 | $(verdict "${R[gw.s2.stats.p50]}" "<=" 5) |"
    echo "| \`/events\` newest 50, one filter, 10 M stored: p50 ≤ 10 ms | $(ms_fmt "${R[gw.s2.events.p50]}") $at10 | $(verdict "${R[gw.s2.events.p50]}" "<=" 10) |"
    echo "| \`/events\` newest 50 of one user, 10 M stored: p50 ≤ 10 ms (issue 3) | $(ms_fmt "${R[gw.s2.events_user.p50]}") $at10 | $(verdict "${R[gw.s2.events_user.p50]}" "<=" 10) |"
    for name in top top_users top_ips top_tokens top_users_24h top_ips_24h top_tokens_24h \
        top_routes top_routes_24h top_ips_3d top_routes_3d; do
        echo "| \`${QUERY_PATHS[$name]#/api/v1/tenants/default}\`, 10 M stored: p50 ≤ 20 ms (issue 3) | $(ms_fmt "${R[gw.s2.$name.p50]}") $at10 | $(verdict "${R[gw.s2.$name.p50]}" "<=" 20) |"
    done
    echo "| disk per stored event ≤ 150 bytes: the store file while serving, blocks on disk (its apparent size: $(int_fmt "${R[gw.s2.disk_per_event]}") bytes) | $(int_fmt "${R[gw.s2.disk_blocks_per_event]}") bytes $at10 | $(verdict "${R[gw.s2.disk_blocks_per_event]}" "<=" 150) |"
    echo "| disk per stored event ≤ 150 bytes: after \`gatewatch compact\` | $(int_fmt "${R[gw.s2.disk_compacted]}") bytes $at10 | $(verdict "${R[gw.s2.disk_compacted]}" "<=" 150) |"
    echo "| RSS with 10 M stored, under load ≤ 200 MiB | $(printf '%.0f' "$M") MiB (the larger peak above) $at10 | $(verdict "$M" "<=" 200) |"
    echo "| start-up with 10 M stored ≤ 1 s to ready | $(ms_fmt "${R[gw.startup_ms]}") $at10 | $(verdict "$(calc "${R[gw.startup_ms]} / 1000")" "<=" 1) |"
    echo
    echo "## Notes"
    echo
    for n in "${NOTES[@]}"; do echo "- $n"; done
    [[ $SIZE2 != 10000000 ]] && [[ ${#NOTES[@]} == 0 ]] &&
        echo "- The budget's \"10 M stored\" figures are measured here with $(int_fmt "$SIZE2") stored."
    echo "- Client and server share the same $(nproc) CPUs; every figure includes the load generator's own CPU use."
    echo "- Ingest: a fresh store; events without \`ts\` (the server stamps them), cycling through $(int_fmt "$POOL_EVENTS") pre-encoded events; ${WARMUP_S} s warm-up, then ${INGEST_S} s measured, closed loop. Latency is from send to the 2xx answer."
    echo "- Disk: the apparent size of every file in the store directory (\`du -sb\`), read while the server runs, divided by the events stored; it includes the store's fixed overhead, which weighs more in the smaller data set. The budget line while serving reads the blocks the files take on disk (\`du -s -B1\`): redb grows its file by up to double and writes only the pages it uses, so the rest of a grown file is a hole that takes no disk (it is what \`compact\` gives back). Memory: VmHWM / VmRSS of the server process from /proc. Start-up: from spawning \`gatewatch serve\` on the store just written (warm page cache, after a clean SIGTERM shutdown) to the first 200 from \`/readyz\`, polled about every 5 ms."
    echo "- The data sets go through the public API (\`gatewatch-bench fill\`), so their \`ts\` lie within the last $DAYS days (the API's window); the 30-day queries cover all of them."
    sb=${R[gw.s2.stats_body]:-}
    if jq -e '.unique_users != null' <<<"${sb:-null}" >/dev/null 2>&1; then
        uniq="also computes unique users and clients, as the Postgres function does (\`COUNT(DISTINCT …)\`; gatewatch's may be approximate, per API.md)"
    else
        uniq="does not compute unique-user/unique-client counts yet, which the Postgres function does (\`COUNT(DISTINCT …)\`)"
    fi
    echo "- The two stats answers are not the same question: gatewatch's \`/stats\` counts every event type (its \`total_failed\` is every failure outcome) and $uniq; the Postgres function counts \`token.*\` rows only. Same data set, so issued and refreshed must agree. gatewatch's answer, $(int_fmt "$SIZE2") stored: ${R[gw.s2.stats_body]:-?}$(has_pg && echo "; Postgres': ${R[pg.s2.stats_result]:-?}")."
    if has_pg; then
        echo "- Postgres ingest: \`pgbench -M prepared -c $CONNS -j 2\`, each transaction one \`INSERT … SELECT\` copying one of the same $(int_fmt "$POOL_EVENTS") events from a staging table by primary key (an index lookup on a cached table, included in the figure), committed on its own with the default \`synchronous_commit=on\`. Latency is pgbench's per-transaction time. Postgres here is reached directly, not through an HTTP API or PostgREST as in the origin."
        echo "- Postgres data sets: the same events as gatewatch's (\`gatewatch-bench pg-csv\`, same seeds and window), \`COPY\`ed into \`audit_logs\` with its indexes in place, then \`VACUUM (ANALYZE)\` ($(printf '%.1f' "${R[pg.s1.vacuum_s]}") s and $(printf '%.1f' "${R[pg.s2.vacuum_s]}") s), as autovacuum would eventually do. Query latency is pgbench's (one session, $PG_QUERY_RUNS runs after one warm-up). Cluster locale C (lets \`LIKE 'token.%'\` use an index); WAL is not counted in the disk figure."
    fi
} >"$WORK/report.md"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/report.md" "$OUT"
cat "$WORK/report.md"
log "report written to $OUT (total $((TOTAL_S / 60)) min $((TOTAL_S % 60)) s)"
