#!/usr/bin/env bash
# Start or stop a private mosquitto on a free loopback port.
#   scripts/broker.sh start DIR   -> prints the port; pid in DIR/mosquitto.pid
#   scripts/broker.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?state folder}
here=$(cd "$(dirname "$0")/.." && pwd)
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  sed -e "s|@PORT@|$port|" -e "s|@DIR@|$dir|" "$here/deploy/mosquitto/local.conf.in" > "$dir/mosquitto.conf"
  "$mosq" -c "$dir/mosquitto.conf" >/dev/null 2>&1 &
  echo $! > "$dir/mosquitto.pid"
  echo "$port" > "$dir/mosquitto.port"
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then
      echo "$port"; exit 0
    fi
    sleep 0.1
  done
  echo "broker.sh: mosquitto did not start on port $port; its log:" >&2
  tail -20 "$dir/mosquitto.log" >&2 || true
  exit 1
  ;;
stop)
  if [ -f "$dir/mosquitto.pid" ]; then
    pid=$(cat "$dir/mosquitto.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/mosquitto.pid"
  fi
  ;;
*) echo "usage: broker.sh start|stop DIR" >&2; exit 2 ;;
esac
