#!/usr/bin/env bash
# Installs the Debian packages pilotwatch needs, only those missing, through sudo when not root.
set -euo pipefail
packages=(mosquitto mosquitto-clients libmosquitto-dev libsqlite3-dev sqlite3 pkg-config openssl python3-venv time prometheus
          python3-paho-mqtt gcc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null; then
  echo "install-deps: no 'swift' on PATH. pilotwatch needs a Swift 6 toolchain (see README.md, Prerequisite)." >&2
  exit 1
fi
