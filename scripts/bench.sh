#!/usr/bin/env bash
# `make bench`: pilotwatch side by side with a baseline in the same run, with ratios.
#
# Ingest: N contract messages at QoS 1 from `pilotwatch loadgen` through a private mosquitto.
#   (a) mosquitto_sub -q 1 receiving them all (the baseline: receive and discard)
#   (b) pilotwatch serve storing them all: each burst written to its inbox journal and flushed
#       (fdatasync) before its acknowledgements leave; SQLite catches up once the burst is over
#       (serve --apply-delay), and the time until SQLite holds them all (validated, committed) is
#       printed too
# once live (publisher running) and once draining a backlog queued while the subscriber was down.
# Peak memory is the maximum resident set size reported by /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_MESSAGES:-200000}
# serve's --apply-delay for every run (empty: its default), to compare apply policies.
delay=${BENCH_APPLY_DELAY:+--apply-delay $BENCH_APPLY_DELAY}
bin=$(pwd)/.build/release/pilotwatch
work=$(mktemp -d /tmp/pilotwatch-bench.XXXXXX)
state=$work/broker
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/broker.sh stop "$state" || true
  rm -rf "$work"
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
secs() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$@"; }
topic='pilots/+/+/obs'
# Waits until serve's log says it has received (stored in its inbox) all N messages.
# $1: its log, $2: its pid.
await_received() {
  until grep -q "received [0-9]* messages (--stop-after" "$1"; do
    kill -0 "$2" 2>/dev/null || { echo "serve stopped before receiving everything; its log:" >&2; cat "$1" >&2; exit 1; }
    sleep 0.01
  done
}

echo "pilotwatch bench: $N messages, broker 127.0.0.1:$port, $(nproc) cores"
echo

# ---- live ------------------------------------------------------------------
mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t "$topic" -i bench-sub-live -C "$N" > /dev/null &
sub=$!; pids+=("$sub"); sleep 0.5
t0=$(now); "$bin" loadgen --port "$port" --count "$N" --run-id live-sub > "$work/loadgen1.txt"; wait "$sub"; t1=$(now)
sub_live=$(rate "$N" "$t0" "$t1")

/usr/bin/time -f %M -o "$work/rss-live" "$bin" serve --config "$work/pilotwatch.yaml" --stop-after "$N" --counts-every 3600 $delay 2> "$work/serve-live.log" &
pw=$!; pids+=("$pw")
for _ in $(seq 1 100); do grep -q subscribed "$work/serve-live.log" && break; sleep 0.1; done
t0=$(now); "$bin" loadgen --port "$port" --count "$N" --run-id live-pw > "$work/loadgen2.txt" &
gen=$!; pids+=("$gen")
await_received "$work/serve-live.log" "$pw"; t1=$(now); wait "$gen"; wait "$pw"; t2=$(now)
pw_live=$(rate "$N" "$t0" "$t1")
pw_live_sql=$(rate "$N" "$t0" "$t2")
rss_live=$(cat "$work/rss-live")
stored=$(sqlite3 "$work/bench.sqlite" "SELECT count(*) FROM message")

# ---- draining a backlog ----------------------------------------------------
mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t "$topic" -i bench-sub-drain -c -W 1 > /dev/null 2>&1 || true
sed -i "s/client_id: bench-pw,/client_id: bench-pw-drain,/" "$work/pilotwatch.yaml"
"$bin" serve --config "$work/pilotwatch.yaml" 2> "$work/serve-reg.log" &
reg=$!; for _ in $(seq 1 100); do grep -q subscribed "$work/serve-reg.log" && break; sleep 0.1; done
kill -TERM "$reg"; wait "$reg" || true
"$bin" loadgen --port "$port" --count "$N" --run-id drain > "$work/loadgen3.txt"

t0=$(now); mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t "$topic" -i bench-sub-drain -c -C "$N" > /dev/null; t1=$(now)
sub_drain=$(rate "$N" "$t0" "$t1")
t0=$(now)
/usr/bin/time -f %M -o "$work/rss-drain" "$bin" serve --config "$work/pilotwatch.yaml" --stop-after "$N" --counts-every 3600 $delay 2> "$work/serve-drain.log" &
pw=$!; pids+=("$pw")
await_received "$work/serve-drain.log" "$pw"; t1=$(now); wait "$pw"; t2=$(now)
pw_drain=$(rate "$N" "$t0" "$t1")
pw_drain_sql=$(rate "$N" "$t0" "$t2")
rss_drain=$(cat "$work/rss-drain")
stored2=$(sqlite3 "$work/bench.sqlite" "SELECT count(*) FROM message")
size=$(du -k "$work/bench.sqlite" | cut -f1)

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
pw_alerts=$(rate "$N" "$t0" "$t1")
pw_alerts_sql=$(rate "$N" "$t0" "$t2")
raised=$(grep -c "alert raised" "$work/serve-alerts.log" || true)
runs=$(grep -c "alert command failed" "$work/serve-alerts.log" || true)

# ---- freshness: half the live maximum ---------------------------------------
# The same stream paced at half of mosquitto_sub's live rate; serve logs, at its stop, how long
# messages waited between their acknowledgement and the commit that made them visible.
half=$((sub_live / 2))
sed -e "s/client_id: bench-pw-drain,/client_id: bench-pw-half,/" -e "s|database: .*|database: $work/half.sqlite|" \
  "$work/pilotwatch.yaml" > "$work/half.yaml"
"$bin" serve --config "$work/half.yaml" --stop-after "$((N / 2))" --counts-every 3600 $delay 2> "$work/serve-half.log" &
pw=$!; pids+=("$pw")
for _ in $(seq 1 100); do grep -q subscribed "$work/serve-half.log" 2>/dev/null && break; sleep 0.1; done
"$bin" loadgen --port "$port" --count "$((N / 2))" --rate "$half" --run-id half > "$work/loadgen5.txt"
wait "$pw"
visibility() { grep -o "visibility after acknowledgement: .*" "$1" | sed -e 's/visibility after acknowledgement: //' -e 's/n=[0-9]* //'; }

printf '%-34s %12s %12s %8s\n' "ingest (messages/s)" "mosquitto_sub" "pilotwatch" "ratio"
printf '%-34s %12s %12s %8s\n' "live, publisher running" "$sub_live" "$pw_live" "$(python3 -c "print(f'{$pw_live/$sub_live:.2f}')")"
printf '%-34s %12s %12s %8s\n' "draining a queued backlog" "$sub_drain" "$pw_drain" "$(python3 -c "print(f'{$pw_drain/$sub_drain:.2f}')")"
printf '%-34s %12s %12s\n' "  until all are in SQLite, live" "" "$pw_live_sql"
printf '%-34s %12s %12s\n' "  until all are in SQLite, draining" "" "$pw_drain_sql"
printf '%-34s %12s %12s %8s\n' "live, alerts.command hanging" "$pw_live" "$pw_alerts" "$(python3 -c "print(f'{$pw_alerts/$pw_live:.2f}')")"
printf '%-34s %12s %12s %8s\n' "  until all are in SQLite" "$pw_live_sql" "$pw_alerts_sql" "$(python3 -c "print(f'{$pw_alerts_sql/$pw_live_sql:.2f}')")"
echo "  (columns: pilotwatch without and with the hanging command; $raised alerts raised, a run of the"
echo "   command hanging from before the first message to after the last; $runs runs stopped in all)"
echo
echo "visible to the views after acknowledgement (per message):"
echo "  at full load (live run):       $(visibility "$work/serve-live.log")"
echo "  at half load ($half msg/s): $(visibility "$work/serve-half.log")   [$(cat "$work/loadgen5.txt")]"
echo
echo "peak memory of pilotwatch serve: live $((rss_live / 1024)) MiB, draining $((rss_drain / 1024)) MiB"
echo "stored messages: $stored after the live run, $stored2 after draining (expected $N and $((2 * N)))"
echo "database size: $((size / 1024)) MiB; publisher: $(cat "$work/loadgen2.txt")"
echo "every message is in the inbox journal (written, fdatasync) before its PUBACK is released;"
echo "serve exits only once SQLite (WAL, synchronous=FULL) holds everything it acknowledged"
