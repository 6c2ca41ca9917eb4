#!/usr/bin/env bash
# Development (and test) certificates for the broker's TLS listener. NOT for production:
# production certificates come from the cluster's CA or an ACME client.
#
#   deploy/mosquitto/make-dev-ca.sh [--client NAME]... OUTDIR [HOSTNAME]...
#
# Writes into OUTDIR:
#   ca.crt ca.key            a development CA (EC P-256, 10 years)
#   server.crt server.key    the broker's certificate, signed by the CA, for localhost, 127.0.0.1,
#                            ::1 and every HOSTNAME given (825 days)
#   NAME.crt NAME.key        a client certificate per --client NAME (optional; the production
#                            broker does not require one, but a listener may)
#
# Idempotent: files that exist and are still valid are kept, so a second run changes nothing.
# A server or client certificate that no longer verifies against ca.crt, or that does not cover
# a HOSTNAME now asked for, is made again. Private keys are mode 0600; hand server.key to the
# broker's user (chown mosquitto) when you install it.
set -euo pipefail

usage() {
  echo "usage: make-dev-ca.sh [--client NAME]... OUTDIR [HOSTNAME]..." >&2
  exit 2
}

clients=()
while [ $# -gt 0 ]; do
  case "$1" in
    --client) [ $# -ge 2 ] || usage; clients+=("$2"); shift 2 ;;
    --client=*) clients+=("${1#--client=}"); shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) echo "make-dev-ca.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
out=$1; shift
hosts=("$@")

command -v openssl >/dev/null || { echo "make-dev-ca.sh: openssl not found; install it (apt-get install openssl)" >&2; exit 1; }
for c in "${clients[@]+"${clients[@]}"}"; do
  case "$c" in
    ca|server|*/*|"") echo "make-dev-ca.sh: --client \"$c\" is not a usable file name (not ca, server, empty or with /)" >&2; exit 2 ;;
  esac
done

mkdir -p "$out"
cd "$out"
umask 077

say() { printf '  %-8s %s\n' "$1" "$2"; }

# A short-lived openssl extension file, removed on exit.
ext=$(mktemp)
trap 'rm -f "$ext" server.csr ./*.csr.tmp' EXIT

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }
serial() { echo "0x$(openssl rand -hex 16)"; }

echo "development CA in $(pwd)"

# The CA.
if [ -s ca.crt ] && [ -s ca.key ] && openssl x509 -in ca.crt -noout -checkend 86400 >/dev/null 2>&1; then
  say kept "ca.crt ($(openssl x509 -in ca.crt -noout -subject | sed 's/^subject=//'))"
else
  new_key ca.key
  openssl req -x509 -new -key ca.key -sha256 -days 3650 -out ca.crt \
    -subj "/O=pilotwatch development/CN=pilotwatch dev CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
  chmod 644 ca.crt
  say created "ca.crt ca.key (CN=pilotwatch dev CA)"
  # Certificates signed by an older CA are now useless.
  rm -f server.crt
  for c in "${clients[@]+"${clients[@]}"}"; do rm -f "$c.crt"; done
fi

# Is FILE a certificate signed by ca.crt, valid for one more day, with a key beside it?
still_good() {
  local crt=$1 key=$2
  [ -s "$crt" ] && [ -s "$key" ] || return 1
  openssl verify -CAfile ca.crt "$crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "$crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  # The certificate's public key must be the key's.
  [ "$(openssl x509 -in "$crt" -noout -pubkey)" = "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ]
}

# The broker's certificate.
names=(localhost 127.0.0.1 ::1 "${hosts[@]+"${hosts[@]}"}")
san=""
for h in "${names[@]}"; do
  if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then entry="IP:$h"; else entry="DNS:$h"; fi
  case ",$san," in *",$entry,"*) ;; *) san="${san:+$san,}$entry" ;; esac
done
server_ok=false
if still_good server.crt server.key; then
  server_ok=true
  for h in "${names[@]}"; do
    if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then check=(-checkip "$h"); else check=(-checkhost "$h"); fi
    if ! openssl x509 -in server.crt -noout "${check[@]}" 2>/dev/null | grep -q "does match"; then
      server_ok=false
    fi
  done
fi
if $server_ok; then
  say kept "server.crt ($san)"
else
  [ -s server.key ] || new_key server.key
  openssl req -new -key server.key -out server.csr -subj "/O=pilotwatch development/CN=${hosts[0]:-localhost}" 2>/dev/null
  cat > "$ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
EOF
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial "$(serial)" -sha256 -days 825 \
    -extfile "$ext" -out server.crt 2>/dev/null
  chmod 644 server.crt
  rm -f server.csr
  say created "server.crt server.key ($san)"
fi

# Client certificates.
for c in "${clients[@]+"${clients[@]}"}"; do
  if still_good "$c.crt" "$c.key"; then
    say kept "$c.crt (CN=$c)"
    continue
  fi
  [ -s "$c.key" ] || new_key "$c.key"
  openssl req -new -key "$c.key" -out "$c.csr.tmp" -subj "/O=pilotwatch development/CN=$c" 2>/dev/null
  cat > "$ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EOF
  openssl x509 -req -in "$c.csr.tmp" -CA ca.crt -CAkey ca.key -set_serial "$(serial)" -sha256 -days 825 \
    -extfile "$ext" -out "$c.crt" 2>/dev/null
  chmod 644 "$c.crt"
  rm -f "$c.csr.tmp"
  say created "$c.crt $c.key (CN=$c)"
done

echo "check:  openssl verify -CAfile $(pwd)/ca.crt $(pwd)/server.crt"
