#!/usr/bin/env bash
# `make demo`: two private mosquitto brokers on free loopback ports, the cluster's `pilotwatch
# serve` and a site instance's, about nine months of the seed cluster simulated over MQTT (twelve
# pilots' devices to the cluster, three to the site), the site's day-end snapshots forwarded to the
# cluster, then the cluster's dashboards, its snapshots and two exports, and checks that no planted
# identifying data and no pseudonym of the site's subjects reached any file of the cluster.
# Everything it starts is stopped on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${PILOTWATCH_BIN:-.build/release/pilotwatch}
out=demo-out
state=$out/broker
db=$out/demo.sqlite
site=$out/site
site_state=$site/broker
site_db=$site/site.sqlite
serve_pid=""; site_pid=""
stop() {  # stop PIDVAR: SIGTERM, then wait for a graceful shutdown
  local pid=${!1}
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  printf -v "$1" '%s' ""
}
cleanup() {
  stop site_pid; stop serve_pid
  scripts/broker.sh stop "$site_state" || true
  scripts/broker.sh stop "$state" || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for d in "$db" "$site_db"; do
  rm -f "$d" "$d"-wal "$d"-shm "$d".lock "$d".sock "$d".audit "$d".audit.head
  rm -rf "$d".inbox "$d".inbox.orphan-*
done
rm -rf "$state" "$site" "$out"/cluster "$out"/cluster-report.*
mkdir -p "$out/cluster" "$site"
unset PILOTWATCH_DB

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }

port=$(scripts/broker.sh start "$state")
site_port=$(scripts/broker.sh start "$site_state")
section "private brokers on 127.0.0.1: cluster :$port, site :$site_port (deploy/mosquitto/local.conf.in)"

# The configurations: the cluster's is seeds/pilotwatch.yaml with the site's three pilots marked
# `reporting: aggregates` and `site: demo-site` in its registry; the site's is seeds/site/ with the
# cluster broker's port, and a copy without its federation: section for the ingest phase.
python3 - "$root" "$port" <<'PY'
import re, sys
root, port = sys.argv[1], sys.argv[2]
out = f"{root}/demo-out"
site_ids = re.findall(r"^  - id: (\S+)", open(f"{root}/seeds/site/pilots.yaml").read(), re.M)
site_id = re.search(r"^  site_id: (\S+)", open(f"{root}/seeds/site/pilotwatch.yaml").read(), re.M).group(1)
lines, registry, current = open(f"{root}/seeds/pilots.yaml").read().split("\n"), [], None
def close():
    if current in site_ids:
        registry.extend([f"    reporting: aggregates", f"    site: {site_id}"])
for line in lines:
    m = re.match(r"  - id: (\S+)", line)
    if m or (current and not line.startswith("    ")):
        close(); current = m.group(1) if m else None
    registry.append(line)
close()
open(f"{out}/cluster/pilots.yaml", "w").write("\n".join(registry))
def rewrite(src, dst, db, extra=lambda t: t):
    text = open(src).read()
    text = re.sub(r"^database: .*$", f"database: {db}", text, flags=re.M)
    text = re.sub(r"^catalogue: .*$", f"catalogue: {root}/config/indicators.yaml", text, flags=re.M)
    open(dst, "w").write(extra(text))
rewrite(f"{root}/seeds/pilotwatch.yaml", f"{out}/cluster/pilotwatch.yaml", f"{out}/demo.sqlite")
site_text = lambda t: t.replace("registry: pilots.yaml", f"registry: {root}/seeds/site/pilots.yaml")
rewrite(f"{root}/seeds/site/pilotwatch.yaml", f"{out}/site/pilotwatch.yaml", f"{out}/site/site.sqlite",
        lambda t: site_text(t).replace("cluster: {host: 127.0.0.1, port: 1883}", f"cluster: {{host: 127.0.0.1, port: {port}}}"))
rewrite(f"{root}/seeds/site/pilotwatch.yaml", f"{out}/site/ingest.yaml", f"{out}/site/site.sqlite",
        lambda t: site_text(t)[:site_text(t).index("\n# The cluster's private")] + "\n")
PY
cfg=$out/cluster/pilotwatch.yaml
site_cfg=$site/pilotwatch.yaml
site_ingest=$site/ingest.yaml
site_pilots=$(grep -o '^  - id: .*' seeds/site/pilots.yaml | cut -c9- | tr '\n' ' ')
echo "cluster: $cfg (seeds/pilotwatch.yaml; $(echo $site_pilots | tr ' ' ',') report aggregates from site demo-site)"
echo "site:    $site_cfg (seeds/site/; forwards $(echo $site_pilots | tr ' ' ','), min_cell 11)"
"$bin" config check --config "$cfg"
"$bin" config check --config "$site_cfg"

"$bin" serve --config "$cfg" --port "$port" --alerts-every 2 2>"$out/serve.log" &
serve_pid=$!
# The site first ingests, as a site does before it joins the federation (its configuration
# without federation:); it joins below, once its devices' nine months are in.
"$bin" serve --config "$site_ingest" --port "$site_port" --alerts-every 3600 2>"$site/serve-ingest.log" &
site_pid=$!
for log in "$out/serve.log" "$site/serve-ingest.log"; do
  for _ in $(seq 1 200); do grep -q "MQTT subscribed" "$log" 2>/dev/null && break; sleep 0.1; done
  grep -q "MQTT subscribed" "$log" || { echo "serve did not subscribe; its log ($log):" >&2; cat "$log" >&2; exit 1; }
done

end=$(date -u +%Y-%m-%dT%H:%M:00Z)
section "simulating the seed cluster over MQTT up to $end (15 pilots since their start, seed 1)"
echo "-- the twelve pilots that report observations, to the cluster's broker"
"$bin" simulate --config "$cfg" --scenario seeds/scenario.yaml --port "$port" --seed 1 --end "$end"
echo "-- the site's three pilots, to the site's broker"
pilot_args=(); for p in $site_pilots; do pilot_args+=(--pilot "$p"); done
"$bin" simulate --config "$site_ingest" --scenario seeds/scenario.yaml --port "$site_port" --seed 1 --end "$end" "${pilot_args[@]}"

handled() {
  "$bin" stats --config "$1" --format json | python3 -c 'import json,sys; d=json.load(sys.stdin)["messages"]; print(d["accepted"]+d["duplicate"]+d["refused"]+d["status"])'
}
settle() {  # until the instance of config $1 has handled every message (no change for 2 s)
  local last=-1 same=0 now
  while [ "$same" -lt 8 ]; do
    now=$(handled "$1"); if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; last=$now; fi
    sleep 0.25
  done
}
settle "$cfg"; settle "$site_ingest"
stop site_pid

section "the site joins the federation: serve with federation: backfills every day end since each pilot's start"
echo "(as a site does when a pilot switches to aggregates; each day end is built with disclosure control at"
echo " min_cell 11, queued in the site's outbox and sent at QoS 1 to the cluster's broker on pilots/{pilot}/demo-site/agg)"
t0=$(date +%s)
"$bin" serve --config "$site_cfg" --port "$site_port" --alerts-every 3600 --federate-every 2 2>"$site/serve.log" &
site_pid=$!
# The first round builds what is due and sends it; its log says how many it built.
for _ in $(seq 1 3000); do
  built=$(grep -c "federation: built" "$site/serve.log" 2>/dev/null || true)
  [ "$built" -ge 3 ] && grep -q "acknowledged by the cluster's broker" "$site/serve.log" && break
  grep -q "federation: .*tried again" "$site/serve.log" && { cat "$site/serve.log" >&2; fail "the site could not send its snapshots"; }
  sleep 0.2
done
grep "federation: built" "$site/serve.log" | sed 's/.*federation: /  site: /'
total=$(grep "federation: built" "$site/serve.log" | sed 's/.*built \([0-9]*\) day-end.*/\1/' | awk '{ n += $1 } END { print n + 0 }')
[ "${total:-0}" -gt 0 ] || { cat "$site/serve.log" >&2; fail "the site built no day-end snapshot"; }
held() {
  "$bin" snapshots --config "$cfg" --format json | python3 -c 'import json,sys; print(sum(p["day_ends"] for p in json.load(sys.stdin)["pilots"]))'
}
refused() {  # the site's snapshots the cluster refused, by reason
  "$bin" rejects --config "$cfg" --format json --limit 100000 | python3 -c '
import collections, json, sys
c = collections.Counter(r["reason"] for r in json.load(sys.stdin) if r["topic"].endswith("/demo-site/agg"))
print(sum(c.values()), " ".join(f"{k}={v}" for k, v in sorted(c.items())))'
}
for _ in $(seq 1 240); do
  n=$(held); r=$(refused)
  [ $((n + ${r%% *})) -ge "$total" ] && break; sleep 0.5
done
[ $((n + ${r%% *})) -ge "$total" ] || fail "the cluster holds $n day-end snapshots and refused ${r%% *} of the $total the site sent; see $out/serve.log"
[ "$n" -gt 0 ] || fail "the cluster accepted none of the $total day-end snapshots the site sent: $r (pilotwatch rejects)"
echo "the cluster accepted $n of the $total day-end snapshots in $(( $(date +%s) - t0 )) s"
if [ "${r%% *}" -gt 0 ]; then
  echo "note: it refused ${r%% *} (${r#* }); they are listed by pilotwatch rejects below, and each pilot's views use its latest accepted day end"
fi
stop site_pid

section "pilotwatch stats (cluster)"
"$bin" stats --config "$cfg"
section "pilotwatch rejects --limit 8 (cluster)"
"$bin" rejects --config "$cfg" --limit 8
section "pilotwatch snapshots (cluster: what the site sent)"
"$bin" snapshots --config "$cfg"
section "pilotwatch status (cluster: 12 pilots from observations, 3 from their site's snapshots, marked G)"
"$bin" status --config "$cfg"
"$bin" status --config "$cfg" --format json | python3 -c '
import json,sys
pilots=json.load(sys.stdin)["pilots"]
agg=[p["pilot"] for p in pilots if p.get("snapshot")]
names=", ".join(agg)
print(f"status shows {len(pilots)} pilots, {len(agg)} of them from the site snapshots ({names})")
sys.exit(0 if len(pilots)==15 and len(agg)==3 else 1)' || fail "status does not show 15 pilots, 3 of them from snapshots"
for p in $("$bin" status --config "$cfg" --format json | python3 -c '
import json,sys
seen=set()
for p in json.load(sys.stdin)["pilots"]:
    prog=p.get("programme")
    if prog not in seen and not p.get("snapshot"):
        seen.add(prog); print(p["pilot"])') ${site_pilots%% *}; do
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
echo "the site's status, as the cluster publishes it for the site (retained):"
mosquitto_sub -h 127.0.0.1 -p "$port" -t 'pilots/_cluster/sites/#' -v -W 1 2>/dev/null | cut -c1-200 || true
if "$bin" export --help >/dev/null 2>&1; then
  section "exports for funders (k = 11)"
  "$bin" export --config "$cfg" --format html --out "$out/cluster-report.html"
  "$bin" export --config "$cfg" --format fhir --out "$out/cluster-report.fhir.json"
  ls -l "$out"/cluster-report.*
fi
stop serve_pid
scripts/broker.sh stop "$state"

section "what reached the cluster's files"
# Every file of the cluster: its database, WAL, inbox, audit trail, log, exports, configuration,
# and its broker's folder (everything under $out but the site's folder).
cluster_files=$(find "$out" -path "$site" -prune -o -type f -print)
planted=$(grep -a -l -F "@example.com" "$db" "$db"-wal 2>/dev/null || true)
planted+=$(find "$db".inbox -type f -exec grep -a -l -F "@example.com" {} + 2>/dev/null || true)
[ -z "$planted" ] || fail "planted identifying data (@example.com) is in $planted"
echo "no @example.com (identifying data planted by the simulator) in the cluster's database, WAL or inbox"
sqlite3 "file:$site_db?mode=ro" "SELECT code FROM subject" > "$site/pseudonyms.txt"
n=$(wc -l < "$site/pseudonyms.txt")
[ "$n" -gt 0 ] || fail "the site's database holds no subject"
leaked=$(echo "$cluster_files" | xargs grep -a -l -F -f "$site/pseudonyms.txt" 2>/dev/null || true)
[ -z "$leaked" ] || fail "a pseudonym of the site's subjects is in: $leaked"
echo "none of the site's $n subject pseudonyms in any of the cluster's $(echo "$cluster_files" | wc -l) files"
echo; echo "demo finished: cluster database $db, site database $site_db, service logs $out/serve.log and $site/serve.log"
