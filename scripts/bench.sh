#!/usr/bin/env bash
# `make bench`: pilotwatch side by side with baselines in the same run, with ratios; the median
# of BENCH_RUNS (3) runs of scripts/bench/ingest-run.sh (which says what each run does).
#
#   BENCH_MESSAGES  messages a run (200,000)
#   BENCH_RUNS      runs (3); every figure printed is the median of the runs
#   BENCH_BIG       also a run of serve alone with this many messages, live and draining, for
#                   its peak memory (e.g. 1000000; off by default: a few minutes)
#   BENCH_APPLY_DELAY, BENCH_SIM_DAYS  see scripts/bench/ingest-run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${BENCH_MESSAGES:-200000}
runs=${BENCH_RUNS:-3}
work=$(mktemp -d /tmp/pilotwatch-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
cc -O2 -o "$work/sqlite-ceiling" scripts/bench/sqlite-ceiling.c -lsqlite3
/usr/bin/python3 -c "import paho.mqtt" 2> /dev/null || { echo "bench: no paho-mqtt for /usr/bin/python3; run scripts/install-deps.sh" >&2; exit 1; }

echo "pilotwatch bench: $N messages, $runs runs (medians), $(nproc) cores"
for r in $(seq 1 "$runs"); do
  scripts/bench/ingest-run.sh "$N" "$work/run$r" "$work/sqlite-ceiling" > "$work/run$r.txt"
  echo "  run $r: live $(awk '$1=="pw_live_sql"{print $2}' "$work/run$r.txt") msg/s until all in SQLite," \
       "draining $(awk '$1=="pw_drain_sql"{print $2}' "$work/run$r.txt")"
  rm -rf "$work/run$r"
done
if [ -n "${BENCH_BIG:-}" ]; then
  BENCH_MEMORY_ONLY=1 scripts/bench/ingest-run.sh "$BENCH_BIG" "$work/big" "$work/sqlite-ceiling" > "$work/big.txt"
  rm -rf "$work/big"
fi
echo

/usr/bin/python3 - "$work" "$runs" "$N" "${BENCH_BIG:-}" <<'PY'
import statistics, sys
work, runs, n, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def load(path):
    out = {}
    for line in open(path):
        k, _, v = line.rstrip("\n").partition(" ")
        out[k] = v
    return out

rs = [load(f"{work}/run{r}.txt") for r in range(1, runs + 1)]

def m(key):
    """The median of a figure over the runs."""
    return statistics.median(float(r[key]) for r in rs)

def row(label, base, ours, target=None):
    ratio = ours / base
    mark = "" if target is None else ("   (target >= %.2f: %s)" % (target, "met" if ratio >= target else "NOT met"))
    print(f"{label:<38} {base:>12.0f} {ours:>12.0f} {ratio:>8.2f}{mark}")

def head(label, a, b):
    print(f"{label:<38} {a:>12} {b:>12} {'ratio':>8}")

sub_live, sub_drain = m("sub_live"), m("sub_drain")
head("ingest (messages/s)", "mosquitto_sub", "pilotwatch")
row("acknowledged, live", sub_live, m("pw_live"), 0.95)
row("acknowledged, draining", sub_drain, m("pw_drain"))
row("until all are in SQLite, live", sub_live, m("pw_live_sql"), 0.9)
row("until all are in SQLite, draining", sub_drain, m("pw_drain_sql"), 0.5)
print()
head("until all are in SQLite (messages/s)", "paho+SQLite", "pilotwatch")
row("live", m("paho_live"), m("pw_live_sql"), 2.5)
row("draining", m("paho_drain"), m("pw_drain_sql"), 3.0)
print()
head("apply path (observations/s)", "SQLite alone", "pilotwatch")
# Observations a second of the applier's own time (one observation a message here).
apply_rate = lambda r: float(r["alone_apply_messages"]) / float(r["alone_apply_seconds"])
ours = statistics.median(apply_rate(r) for r in rs)
row("same rows, 16,384 messages a commit", m("ceiling_obs"), ours, 0.7)
print(f"  (SQLite alone: scripts/bench/sqlite-ceiling.c inserting the same message and observation rows")
print(f"   into the same schema with the same settings, no validation or roll-ups; pilotwatch: serve")
print(f"   applying the {m('apply_held'):.0f} messages its inbox held at start, nothing else running,")
print(f"   its own time reading, validating, storing, rolling up and committing)")
print()
head("live, alerts.command hanging", "without", "with")
row("  acknowledged (messages/s)", m("pw_live"), m("pw_alerts"))
row("  until all are in SQLite", m("pw_live_sql"), m("pw_alerts_sql"))
print(f"  ({m('alerts_raised'):.0f} alerts raised, a run of the command hanging from before the first message")
print(f"   to after the last; {m('alert_runs'):.0f} runs stopped in all)")
print()
print("visible to the views after acknowledgement (per message, ms):")
print(f"  at full load (live run):        p50={m('vis_full_p50'):.0f} p99={m('vis_full_p99'):.0f} max={m('vis_full_max'):.0f}")
p99 = m("vis_half_p99")
print(f"  at half load ({m('half_rate'):.0f} msg/s):   p50={m('vis_half_p50'):.0f} p99={p99:.0f} max={m('vis_half_max'):.0f}"
      f"   (target p99 <= 2000: {'met' if p99 <= 2000 else 'NOT met'})")
print()
print(f"simulator's mix ({rs[0]['sim_messages']} messages, {rs[0]['sim_observations']} observations stored; "
      f"seeds/scenario.yaml), until all are in SQLite:")
print(f"  {m('sim_msgs'):.0f} messages/s, {m('sim_obs'):.0f} observations/s")
print()
mib = lambda k: m(k) / 1024
print(f"peak memory of pilotwatch serve ({n} messages): live {mib('rss_live'):.0f} MiB, draining {mib('rss_drain'):.0f} MiB")
if big:
    b = load(f"{work}/big.txt")
    worst = max(float(b["rss_live"]), float(b["rss_drain"])) / 1024
    print(f"peak memory of pilotwatch serve ({big} messages): live {float(b['rss_live'])/1024:.0f} MiB, "
          f"draining {float(b['rss_drain'])/1024:.0f} MiB   (target < 64: {'met' if worst < 64 else 'NOT met'}); "
          f"until all in SQLite {b['pw_live_sql']} msg/s live, {b['pw_drain_sql']} draining")
stored = [(r["stored_live"], r["stored_drain"]) for r in rs]
print(f"stored messages per run: {', '.join(f'{a} and {b}' for a, b in stored)} (expected {n} and {2 * n});"
      f" paho stored {', '.join(r['paho_live_stored'] + '/' + r['paho_drain_stored'] for r in rs)}")
print(f"database size: {rs[0]['size_mib']} MiB; publisher (run 1): {rs[0]['publisher'].strip(chr(34))}")
print("every message is in the inbox journal (written, fdatasync) before its PUBACK is released;")
print("serve exits only once SQLite (WAL, synchronous=FULL) holds everything it acknowledged")
PY
