#!/usr/bin/env bash
# Local stand-ins for the cloud services the tests use, each in its own virtual environment.
#   BigQuery: crucible-emulator (pins its own duckdb, so it cannot share the project's venv).
# Idempotent: does nothing when the emulator is already installed at the pinned version.
# The venv path defaults to <repo>/.venv-crucible; override with IMGOMOP_CRUCIBLE_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."

CRUCIBLE_VERSION="0.1.0a2"
venv="${IMGOMOP_CRUCIBLE_VENV:-.venv-crucible}"
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3

if [ -x "$venv/bin/crucible" ] && [ -x "$venv/bin/python" ] \
   && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('crucible-emulator') != '$CRUCIBLE_VERSION')" 2>/dev/null; then
  exit 0
fi

if ! command -v uv >/dev/null 2>&1; then
  "$python" -m pip install --quiet --disable-pip-version-check uv
fi
uv_cmd="uv"; command -v uv >/dev/null 2>&1 || uv_cmd="$python -m uv"

[ -x "$venv/bin/python" ] || $uv_cmd venv --quiet -p "$python" "$venv"
$uv_cmd pip install --quiet -p "$venv/bin/python" "crucible-emulator[server]==$CRUCIBLE_VERSION"
echo "crucible-emulator $CRUCIBLE_VERSION installed in $venv"
