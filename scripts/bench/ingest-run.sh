#!/usr/bin/env bash
# One run of the ingest benchmark, on a private mosquitto; scripts/bench.sh runs it BENCH_RUNS
# times and prints the medians. Prints "key value" lines on stdout.
#
#   scripts/bench/ingest-run.sh N WORK CEILING_BINARY
#
# N contract messages at QoS 1 from `pilotwatch loadgen` (one observation each), received by
#   mosquitto_sub -q 1 (the baseline: receive and discard), pilotwatch serve (each burst written
#   to its inbox and flushed before its acknowledgements leave; SQLite behind it), and a batched
#   paho + SQLite subscriber (scripts/bench/paho-sqlite.py, the user's naive alternative),
# once live (publisher running) and once draining a backlog queued while the subscriber was down;
# then serve with a hanging alerts.command, serve at half the live rate (freshness), the
# simulator's mix (several observations a message), and SQLite's own ceiling on the same rows
# (scripts/bench/sqlite-ceiling.c). Peak memory is the maximum resident set size (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=$1
work=$2
ceiling=$3
mkdir -p "$work"
# serve's --apply-delay for every run (empty: its default), and any other serve options
# (BENCH_SERVE_ARGS, e.g. "--apply-due 3600"), to compare apply policies.
delay="${BENCH_APPLY_DELAY:+--apply-delay $BENCH_APPLY_DELAY} ${BENCH_SERVE_ARGS:-}"
sim_days=${BENCH_SIM_DAYS:-30}
bin=${PILOTWATCH_BIN:-$(pwd)/.build/release/pilotwatch}
python=/usr/bin/python3  # the system's, where python3-paho-mqtt installs paho
state=$work/broker
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/broker.sh stop "$state" || true
}
trap cleanup EXIT INT TERM

port=$(scripts/broker.sh start "$state")
cat > "$work/pilotwatch.yaml" <<YAML
broker: {host: 127.0.0.1, port: $port, client_id: bench-pw, receive_maximum: 1000}
topic_root: pilots
database: $work/bench.sqlite
registry: $(pwd)/config/pilots.yaml
catalogue: $(pwd)/config/indicators.yaml
YAML
now() { date +%s.%N; }
rate() { python3 -c "import sys; n,a,b=float(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f'{n/(b-a):.0f}')" "$@"; }
emit() { echo "$1 $2"; }
topic='pilots/+/+/obs'
# Waits until serve's log says it has received (stored in its inbox) all N messages.
# $1: its log, $2: its pid.
await_received() {
  until grep -q "received [0-9]* messages (--stop-after" "$1"; do
    kill -0 "$2" 2>/dev/null || { echo "serve stopped before receiving everything; its log:" >&2; cat "$1" >&2; exit 1; }
    sleep 0.01
  done
}
# Waits until a subscriber has said "subscribed" on its stderr ($1).
await_subscribed() {
  for _ in $(seq 1 200); do grep -q subscribed "$1" 2>/dev/null && return; sleep 0.05; done
  echo "no subscription in $1" >&2; exit 1
}
# serve's log at stop: visibility percentiles (ms) and the apply path's work.
visibility() {
  local line; line=$(grep -o "visibility after acknowledgement: .*" "$1")
  for k in p50 p99 max; do emit "$2_$k" "$(echo "$line" | grep -o "$k=[0-9]*" | cut -d= -f2)"; done
}
apply_work() {
  local line; line=$(grep -o "apply path: .*" "$1")
  emit "$2_apply_messages" "$(echo "$line" | sed -E 's/apply path: ([0-9]+) messages.*/\1/')"
  emit "$2_apply_seconds" "$(echo "$line" | sed -E 's/.* in ([0-9.]+) s of applying.*/\1/')"
}

# BENCH_MEMORY_ONLY=1: serve live and draining only (the peak-memory run at 1,000,000 messages).
full() { [ -z "${BENCH_MEMORY_ONLY:-}" ]; }

# ---- live ------------------------------------------------------------------
if full; then
mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t "$topic" -i bench-sub-live -C "$N" > /dev/null &
sub=$!; pids+=("$sub"); sleep 0.5
t0=$(now); "$bin" loadgen --port "$port" --count "$N" --run-id live-sub > "$work/loadgen1.txt"; wait "$sub"; t1=$(now)
sub_live=$(rate "$N" "$t0" "$t1")
emit sub_live "$sub_live"
fi

: > "$work/serve-live.log"
/usr/bin/time -f %M -o "$work/rss-live" "$bin" serve --config "$work/pilotwatch.yaml" --stop-after "$N" --counts-every 3600 $delay 2> "$work/serve-live.log" &
pw=$!; pids+=("$pw")
for _ in $(seq 1 100); do grep -q subscribed "$work/serve-live.log" && break; sleep 0.1; done
t0=$(now); "$bin" loadgen --port "$port" --count "$N" --run-id live-pw > "$work/loadgen2.txt" &
gen=$!; pids+=("$gen")
await_received "$work/serve-live.log" "$pw"; t1=$(now); wait "$gen"; wait "$pw"; t2=$(now)
emit pw_live "$(rate "$N" "$t0" "$t1")"
emit pw_live_sql "$(rate "$N" "$t0" "$t2")"
emit rss_live "$(cat "$work/rss-live")"
emit stored_live "$(sqlite3 "$work/bench.sqlite" "SELECT count(*) FROM message")"
visibility "$work/serve-live.log" vis_full
apply_work "$work/serve-live.log" live
emit publisher "\"$(cat "$work/loadgen2.txt")\""

if full; then

$python scripts/bench/paho-sqlite.py --port "$port" --topic "$topic" --count "$N" --db "$work/paho-live.sqlite" \
  --client-id bench-paho-live > /dev/null 2> "$work/bench-paho-live.log" &
p=$!; pids+=("$p")
await_subscribed "$work/bench-paho-live.log"
t0=$(now); "$bin" loadgen --port "$port" --count "$N" --run-id live-paho > /dev/null; wait "$p"; t1=$(now)
emit paho_live "$(rate "$N" "$t0" "$t1")"
emit paho_live_stored "$(sqlite3 "$work/paho-live.sqlite" "SELECT count(*) FROM message")"
fi

# ---- draining a backlog ----------------------------------------------------
if full; then
  mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t "$topic" -i bench-sub-drain -c -W 1 > /dev/null 2>&1 || true
  $python scripts/bench/paho-sqlite.py --port "$port" --topic "$topic" --client-id bench-paho-drain --register 2> /dev/null
fi
sed -i "s/client_id: bench-pw,/client_id: bench-pw-drain,/" "$work/pilotwatch.yaml"
"$bin" serve --config "$work/pilotwatch.yaml" 2> "$work/serve-reg.log" &
reg=$!; for _ in $(seq 1 100); do grep -q subscribed "$work/serve-reg.log" && break; sleep 0.1; done
kill -TERM "$reg"; wait "$reg" || true
"$bin" loadgen --port "$port" --count "$N" --run-id drain > "$work/loadgen3.txt"

if full; then
t0=$(now); mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t "$topic" -i bench-sub-drain -c -C "$N" > /dev/null; t1=$(now)
emit sub_drain "$(rate "$N" "$t0" "$t1")"
fi
t0=$(now)
: > "$work/serve-drain.log"
/usr/bin/time -f %M -o "$work/rss-drain" "$bin" serve --config "$work/pilotwatch.yaml" --stop-after "$N" --counts-every 3600 $delay 2> "$work/serve-drain.log" &
pw=$!; pids+=("$pw")
await_received "$work/serve-drain.log" "$pw"; t1=$(now); wait "$pw"; t2=$(now)
emit pw_drain "$(rate "$N" "$t0" "$t1")"
emit pw_drain_sql "$(rate "$N" "$t0" "$t2")"
emit rss_drain "$(cat "$work/rss-drain")"
emit stored_drain "$(sqlite3 "$work/bench.sqlite" "SELECT count(*) FROM message")"
emit size_mib "$(( $(du -k "$work/bench.sqlite" | cut -f1) / 1024 ))"
apply_work "$work/serve-drain.log" drain
full || exit 0

t0=$(now)
$python scripts/bench/paho-sqlite.py --port "$port" --topic "$topic" --count "$N" --db "$work/paho-drain.sqlite" \
  --client-id bench-paho-drain 2> /dev/null
t1=$(now)
emit paho_drain "$(rate "$N" "$t0" "$t1")"
emit paho_drain_stored "$(sqlite3 "$work/paho-drain.sqlite" "SELECT count(*) FROM message")"

# ---- live again, with a slow and failing alerts.command ---------------------
# serve evaluates the alert rules every 5 s (every 60 by default); the seed registry's pilots
# raise alerts at once (the load generator's subjects are never enrolled, most pilots send
# nothing), and each run of the command hangs until its 20 s timeout, then counts as failed and is
# retried. It runs on the alert thread: the rate must not move. "Until all are in SQLite" is
# read from the database here (serve's stop gives ingest_stopped's command up to 5 s).
cat > "$work/slow-alert.sh" <<'SH'
#!/bin/sh
sleep 30
exit 1
SH
chmod +x "$work/slow-alert.sh"
sed -e "s/client_id: bench-pw-drain,/client_id: bench-pw-alerts,/" -e "s|database: .*|database: $work/alerts.sqlite|" \
  "$work/pilotwatch.yaml" > "$work/alerts.yaml"
printf 'alerts: {command: [%s], command_timeout: 20}\n' "$work/slow-alert.sh" >> "$work/alerts.yaml"
"$bin" serve --config "$work/alerts.yaml" --stop-after "$N" --counts-every 3600 --alerts-every 5 $delay 2> "$work/serve-alerts.log" &
pw=$!; pids+=("$pw")
for _ in $(seq 1 100); do grep -q subscribed "$work/serve-alerts.log" 2>/dev/null && break; sleep 0.1; done
sleep 3  # the first evaluation (after 2 s) has raised its alerts and the command hangs
t0=$(now); "$bin" loadgen --port "$port" --count "$N" --run-id live-alerts > "$work/loadgen4.txt" &
gen=$!; pids+=("$gen")
await_received "$work/serve-alerts.log" "$pw"; t1=$(now)
until [ "$(sqlite3 "$work/alerts.sqlite" "SELECT count(*) FROM message" 2>/dev/null || echo 0)" -ge "$N" ]; do sleep 0.05; done
t2=$(now); wait "$gen"; wait "$pw"
emit pw_alerts "$(rate "$N" "$t0" "$t1")"
emit pw_alerts_sql "$(rate "$N" "$t0" "$t2")"
emit alerts_raised "$(grep -c "alert raised" "$work/serve-alerts.log" || true)"
emit alert_runs "$(grep -c "alert command failed" "$work/serve-alerts.log" || true)"

# ---- the apply path alone, and SQLite's ceiling ------------------------------
# serve receives N messages and is killed (SIGKILL) as soon as they are all in its inbox; started
# again, it applies what the inbox holds first, with nothing else running: its log gives the apply
# path's own time (reading, validating, storing, rolling up, committing). SQLite's ceiling: the
# same rows again, into a fresh database of the same schema and settings, at the applier's commit
# size for a backlog (16,384 messages), by scripts/bench/sqlite-ceiling.c.
sed -e "s/client_id: bench-pw-drain,/client_id: bench-pw-apply,/" -e "s|database: .*|database: $work/apply.sqlite|" \
  "$work/pilotwatch.yaml" > "$work/apply.yaml"
"$bin" serve --config "$work/apply.yaml" --stop-after "$N" --counts-every 3600 $delay 2> "$work/serve-apply1.log" &
pw=$!; pids+=("$pw")
for _ in $(seq 1 100); do grep -q subscribed "$work/serve-apply1.log" && break; sleep 0.1; done
"$bin" loadgen --port "$port" --count "$N" --run-id apply > /dev/null &
gen=$!; pids+=("$gen")
await_received "$work/serve-apply1.log" "$pw"; kill -KILL "$pw"; wait "$pw" 2> /dev/null || true; wait "$gen"
emit apply_held "$(( N - $(sqlite3 "$work/apply.sqlite" "SELECT count(*) FROM message") ))"
"$bin" serve --config "$work/apply.yaml" --counts-every 3600 $delay 2> "$work/serve-apply2.log" &
pw=$!; pids+=("$pw")
for _ in $(seq 1 100); do grep -q subscribed "$work/serve-apply2.log" && break; sleep 0.1; done
kill -TERM "$pw"; wait "$pw"
apply_work "$work/serve-apply2.log" alone
emit apply_observations "$(sqlite3 "$work/apply.sqlite" "SELECT observations FROM ingest_total")"
sqlite3 "$work/apply.sqlite" "PRAGMA wal_checkpoint(TRUNCATE)" > /dev/null
rm -f "$work"/ceiling.sqlite*
read -r _ cm _ co _ cs < <("$ceiling" "$work/apply.sqlite" "$work/ceiling.sqlite" 16384)
emit ceiling_obs "$(python3 -c "print(f'{$co/$cs:.0f}')")"
emit ceiling_msgs "$(python3 -c "print(f'{$cm/$cs:.0f}')")"
rm -rf "$work"/ceiling.sqlite* "$work"/apply.sqlite*

# ---- freshness: half the live maximum ---------------------------------------
# The same stream paced at half of mosquitto_sub's live rate; serve logs, at its stop, how long
# messages waited between their acknowledgement and the commit that made them visible.
half=$((sub_live / 2))
emit half_rate "$half"
sed -e "s/client_id: bench-pw-drain,/client_id: bench-pw-half,/" -e "s|database: .*|database: $work/half.sqlite|" \
  "$work/pilotwatch.yaml" > "$work/half.yaml"
"$bin" serve --config "$work/half.yaml" --stop-after "$((N / 2))" --counts-every 3600 $delay 2> "$work/serve-half.log" &
pw=$!; pids+=("$pw")
for _ in $(seq 1 100); do grep -q subscribed "$work/serve-half.log" 2>/dev/null && break; sleep 0.1; done
"$bin" loadgen --port "$port" --count "$((N / 2))" --rate "$half" --run-id half > "$work/loadgen5.txt"
wait "$pw"
visibility "$work/serve-half.log" vis_half
emit half_publisher "\"$(cat "$work/loadgen5.txt")\""

# ---- the simulator's mix ------------------------------------------------------
# BENCH_SIM_DAYS (30) days of the seed cluster's traffic (seeds/scenario.yaml: several
# observations a message, status messages, deliberate mistakes), published as fast as the broker
# takes them, into serve with the seed registry: until everything is in SQLite, in messages and
# in observations stored a second.
end=$(date -u +%Y-%m-%dT%H:%M:00Z)
simargs=(--config seeds/pilotwatch.yaml --scenario seeds/scenario.yaml --days "$sim_days" --end "$end")
sim_n=$("$bin" simulate "${simargs[@]}" --dry-run --out - 2> /dev/null | wc -l)
cat > "$work/sim.yaml" <<YAML
broker: {host: 127.0.0.1, port: $port, client_id: bench-pw-sim, receive_maximum: 1000}
topic_root: pilots
database: $work/sim.sqlite
registry: $(pwd)/seeds/pilots.yaml
catalogue: $(pwd)/config/indicators.yaml
YAML
"$bin" serve --config "$work/sim.yaml" --stop-after "$sim_n" --counts-every 3600 $delay 2> "$work/serve-sim.log" &
pw=$!; pids+=("$pw")
for _ in $(seq 1 100); do grep -q subscribed "$work/serve-sim.log" 2>/dev/null && break; sleep 0.1; done
t0=$(now); "$bin" simulate "${simargs[@]}" --port "$port" > /dev/null 2>&1; wait "$pw"; t1=$(now)
sim_obs=$(sqlite3 "$work/sim.sqlite" "SELECT observations FROM ingest_total")
emit sim_messages "$sim_n"
emit sim_observations "$sim_obs"
emit sim_msgs "$(rate "$sim_n" "$t0" "$t1")"
emit sim_obs "$(rate "$sim_obs" "$t0" "$t1")"
