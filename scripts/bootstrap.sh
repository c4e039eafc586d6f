#!/usr/bin/env bash
# Create ./.venv from the project's own files (uv from PyPI; falls back to pip + venv).
# Usage: scripts/bootstrap.sh [extra]   e.g. "test" installs the test dependencies too.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
spec="."
[ -n "$extra" ] && spec=".[$extra]"
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3

if ! command -v uv >/dev/null 2>&1; then
  "$python" -m pip install --quiet --disable-pip-version-check uv || true
fi
if command -v uv >/dev/null 2>&1 || "$python" -m uv --version >/dev/null 2>&1; then
  uv_cmd="uv"; command -v uv >/dev/null 2>&1 || uv_cmd="$python -m uv"
  [ -x .venv/bin/python ] || $uv_cmd venv --quiet -p "$python" .venv
  $uv_cmd pip install --quiet -p .venv/bin/python -e "$spec"
else
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/pip install --quiet -e "$spec"
fi
