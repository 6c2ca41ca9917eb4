#!/usr/bin/env bash
# Creates .venv-fhir in the repository root: a Python virtual environment with the FHIR R4
# (4.0.1) models of fhir.resources 6.4.0 and pydantic 1, which scripts/fhir-validate.py uses to
# check `pilotwatch export --format fhir`. Idempotent: when the environment already has the
# pinned versions it returns at once. Needs python3 with venv and access to PyPI.
#
#   scripts/fhir-venv.sh            # create or check
#   .venv-fhir/bin/python scripts/fhir-validate.py bundle.json
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-fhir"
python="${PYTHON:-python3}"

check() {
    [ -x "$venv/bin/python" ] && "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
ok = m.version("fhir.resources") == "6.4.0" and m.version("pydantic").startswith("1.")
sys.exit(0 if ok else 1)
PY
}

if check; then
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "fhir-venv: $python not found; install Python 3 (apt-get install python3 python3-venv)" >&2
    exit 1
fi

rm -rf "$venv"
if ! "$python" -m venv "$venv"; then
    echo "fhir-venv: '$python -m venv' failed; install the venv module (apt-get install python3-venv)" >&2
    rm -rf "$venv"
    exit 1
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "fhir.resources==6.4.0" "pydantic>=1.10,<2"
if ! check; then
    echo "fhir-venv: $venv does not have fhir.resources 6.4.0 with pydantic 1 after installing" >&2
    exit 1
fi
echo "fhir-venv: ready ($venv)" >&2
