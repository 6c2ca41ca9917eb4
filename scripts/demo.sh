#!/usr/bin/env bash
# `make demo`: a private mosquitto on a free loopback port, `pilotwatch serve`, about nine months
# of the seed cluster simulated over MQTT, then the dashboards and two exports. Everything it
# starts is stopped on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PILOTWATCH_BIN:-.build/release/pilotwatch}
out=demo-out
state=$out/broker
cfg=seeds/pilotwatch.yaml
db=$out/demo.sqlite
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ]; then kill -TERM "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  scripts/broker.sh stop "$state" || true
}
trap cleanup EXIT INT TERM
rm -rf "$state" "$db" "$db"-wal "$db"-shm "$db".inbox "$db".inbox.orphan-* "$db".lock "$db".sock "$db".audit "$db".audit.head
mkdir -p "$out"
export PILOTWATCH_DB=$db

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

port=$(scripts/broker.sh start "$state")
section "private mosquitto on 127.0.0.1:$port (deploy/mosquitto/local.conf.in)"
"$bin" config check --config "$cfg"

"$bin" serve --config "$cfg" --port "$port" --alerts-every 2 2>"$out/serve.log" &
serve_pid=$!
for _ in $(seq 1 200); do grep -q "MQTT subscribed" "$out/serve.log" 2>/dev/null && break; sleep 0.1; done
grep -q "MQTT subscribed" "$out/serve.log" || { echo "serve did not subscribe; its log:" >&2; cat "$out/serve.log" >&2; exit 1; }

section "simulating the seed cluster over MQTT (15 pilots, since their start)"
"$bin" simulate --config "$cfg" --scenario seeds/scenario.yaml --port "$port" --seed 1

handled() {
  "$bin" stats --config "$cfg" --format json | python3 -c 'import json,sys; d=json.load(sys.stdin)["messages"]; print(d["accepted"]+d["duplicate"]+d["refused"]+d["status"])'
}
last=-1; same=0
while [ "$same" -lt 8 ]; do
  now=$(handled); if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; last=$now; fi
  sleep 0.25
done
# The views run beside serve (they never wait for it), so they open with "ingest: running".

section "pilotwatch stats"
"$bin" stats --config "$cfg"
section "pilotwatch rejects --limit 8"
"$bin" rejects --config "$cfg" --limit 8
section "pilotwatch status"
"$bin" status --config "$cfg"
for p in $("$bin" status --config "$cfg" --format json | python3 -c '
import json,sys
seen=set()
for p in json.load(sys.stdin)["pilots"]:
    prog=p.get("programme")
    if prog not in seen:
        seen.add(prog); print(p["pilot"])'); do
  section "pilotwatch pilot $p"
  "$bin" pilot "$p" --config "$cfg"
done
# serve evaluates the alert rules every 2 s here (every minute by default): one more round
# after the last message, then what it raised and published.
sleep 3
section "pilotwatch alerts (raised by serve, retained on the broker under pilots/_cluster/alerts/)"
"$bin" alerts --config "$cfg"
echo
echo "retained alert messages on the broker:"
mosquitto_sub -h 127.0.0.1 -p "$port" -t 'pilots/_cluster/alerts/#' -v -W 1 2>/dev/null | cut -c1-150 || true
if "$bin" export --help >/dev/null 2>&1; then
  section "exports for funders (k = 11)"
  "$bin" export --config "$cfg" --format html --out "$out/cluster-report.html"
  "$bin" export --config "$cfg" --format fhir --out "$out/cluster-report.fhir.json"
  ls -l "$out"/cluster-report.*
fi
kill -TERM "$serve_pid"; wait "$serve_pid" || true; serve_pid=""
echo; echo "demo finished: database $db, service log $out/serve.log"
