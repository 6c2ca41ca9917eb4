#!/usr/bin/env bash
# Installs pilotwatch as a systemd service on a Debian host. Run as root from the source tree,
# after `make release`. Safe to run again: it never overwrites configuration or data.
#
#   deploy/install.sh [--bin PATH] [--broker-host HOST] [--broker-port PORT]
#
# It creates:
#   user/group pilotwatch        system account without a login shell or home
#   /usr/local/bin/pilotwatch    the binary (replaced on every run: this is the upgrade path)
#   /etc/pilotwatch/             root:pilotwatch 0750: pilotwatch.yaml (TLS, username pilotwatch,
#                                password_file), pilots.yaml, indicators.yaml, broker-password
#                                (a new random password, 0640) unless they exist
#   /var/lib/pilotwatch/         pilotwatch:pilotwatch 0750: the database, and its audit trail
#                                (pilotwatch.sqlite.audit and .audit.head, 0660) unless they exist
#   /etc/systemd/system/pilotwatch.service
# and, when /usr/bin/mosquitto_passwd exists, gives the broker account "pilotwatch" the password
# in broker-password (in /etc/mosquitto/passwd). The broker itself (mosquitto.conf, acl,
# certificates) is set up by hand: see deploy/mosquitto/README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/.build/release/pilotwatch"
broker_host=localhost
broker_port=8883
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --broker-host) broker_host=$2; shift 2 ;;
    --broker-port) broker_port=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo deploy/install.sh)" >&2; exit 1; }
[ -x "$bin" ] || { echo "install.sh: no pilotwatch binary at $bin; run 'make release' or pass --bin PATH" >&2; exit 1; }

step() { printf '  %-9s %s\n' "$1" "$2"; }
echo "installing pilotwatch"

if ! getent group pilotwatch >/dev/null; then groupadd --system pilotwatch; step created "group pilotwatch"; fi
if ! getent passwd pilotwatch >/dev/null; then
  useradd --system --gid pilotwatch --home-dir /var/lib/pilotwatch --no-create-home --shell /usr/sbin/nologin pilotwatch
  step created "user pilotwatch"
else
  step kept "user pilotwatch"
fi

install -m 0755 "$bin" /usr/local/bin/pilotwatch
step installed "/usr/local/bin/pilotwatch ($(/usr/local/bin/pilotwatch --version))"

install -d -o root -g pilotwatch -m 0750 /etc/pilotwatch
install -d -o pilotwatch -g pilotwatch -m 0750 /var/lib/pilotwatch
# The audit trail: appended by whoever runs a view (staff in group pilotwatch), who cannot
# write the database; see "Audit trail" in README.md.
for f in pilotwatch.sqlite.audit pilotwatch.sqlite.audit.head; do
  if [ -e "/var/lib/pilotwatch/$f" ]; then step kept "/var/lib/pilotwatch/$f"
  else install -o pilotwatch -g pilotwatch -m 0660 /dev/null "/var/lib/pilotwatch/$f"; step created "/var/lib/pilotwatch/$f (0660: appended by group pilotwatch)"; fi
done
# The erasure key (tombstones are keyed hashes under it; see docs/privacy.md): made once, here,
# never replaced; read by the group so that `subjects show` names a subject by its keyed hash.
key=/var/lib/pilotwatch/pilotwatch.sqlite.key
if [ -e "$key" ]; then step kept "$key"
else
  ( umask 0027; head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n' > "$key.new" && echo >> "$key.new" && mv "$key.new" "$key" )
  chown pilotwatch:pilotwatch "$key"; chmod 0640 "$key"
  step created "$key (0640: the erasure key)"
fi

for f in pilots.yaml indicators.yaml; do
  if [ -e "/etc/pilotwatch/$f" ]; then step kept "/etc/pilotwatch/$f"
  else install -o root -g pilotwatch -m 0640 "$here/config/$f" "/etc/pilotwatch/$f"; step created "/etc/pilotwatch/$f"; fi
done

if [ -e /etc/pilotwatch/pilotwatch.yaml ]; then
  step kept /etc/pilotwatch/pilotwatch.yaml
else
  umask 027
  cat > /etc/pilotwatch/pilotwatch.yaml <<EOF
# pilotwatch service configuration (written by deploy/install.sh).
broker:
  host: $broker_host
  port: $broker_port
  client_id: pilotwatch-cluster
  username: pilotwatch
  password_file: broker-password
  # The CA that signed the broker's certificate; the certificate must name $broker_host.
  tls: {ca_file: ca.crt}
  keepalive: 30
  session_expiry_seconds: 604800
  receive_maximum: 256
topic_root: pilots
database: /var/lib/pilotwatch/pilotwatch.sqlite
registry: pilots.yaml
catalogue: indicators.yaml
EOF
  chown root:pilotwatch /etc/pilotwatch/pilotwatch.yaml
  chmod 0640 /etc/pilotwatch/pilotwatch.yaml
  step created "/etc/pilotwatch/pilotwatch.yaml (broker $broker_host:$broker_port over TLS)"
fi

if [ -e /etc/pilotwatch/broker-password ]; then
  step kept /etc/pilotwatch/broker-password
else
  umask 027
  head -c 36 /dev/urandom | base64 -w0 | tr -d '/+=' > /etc/pilotwatch/broker-password
  chown root:pilotwatch /etc/pilotwatch/broker-password
  chmod 0640 /etc/pilotwatch/broker-password
  step created "/etc/pilotwatch/broker-password (random)"
  if [ -x /usr/bin/mosquitto_passwd ]; then
    [ -e /etc/mosquitto/passwd ] || { install -d /etc/mosquitto; install -m 0640 -o root -g "$(getent group mosquitto >/dev/null && echo mosquitto || echo root)" /dev/null /etc/mosquitto/passwd; }
    pw=$(cat /etc/pilotwatch/broker-password)
    # On standard input, twice: the password never appears on a command line.
    printf '%s\n%s\n' "$pw" "$pw" | mosquitto_passwd /etc/mosquitto/passwd pilotwatch >/dev/null
    unset pw
    step set "broker account pilotwatch in /etc/mosquitto/passwd (reload mosquitto)"
  else
    echo "  note      mosquitto_passwd not found: give the broker account pilotwatch the password in /etc/pilotwatch/broker-password"
  fi
fi

if [ ! -e /etc/pilotwatch/ca.crt ]; then
  echo "  todo      copy the broker's CA certificate to /etc/pilotwatch/ca.crt (0644)"
fi

install -m 0644 "$here/deploy/systemd/pilotwatch.service" /etc/systemd/system/pilotwatch.service
step installed /etc/systemd/system/pilotwatch.service
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "next: sudo -u pilotwatch pilotwatch config check --config /etc/pilotwatch/pilotwatch.yaml"
  echo "      systemctl enable --now pilotwatch && journalctl -u pilotwatch -f"
else
  echo "systemd is not running here: start it with  systemctl daemon-reload && systemctl enable --now pilotwatch  on the target host"
fi
