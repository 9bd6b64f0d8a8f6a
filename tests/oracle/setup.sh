#!/usr/bin/env bash
# Creates the Python venv with the official webhook SDKs that client/tests/sdk_oracle.rs uses
# as a test oracle. Idempotent: when the venv already holds exactly requirements.txt it only
# says so. Needs python3 with venv (Debian: apt-get install python3-venv) and PyPI.
#
#   bash tests/oracle/setup.sh            # → target/oracle-venv
#   TWK_ORACLE_VENV=/some/dir bash tests/oracle/setup.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${TWK_ORACLE_VENV:-$root/target/oracle-venv}"
req="$here/requirements.txt"
stamp="$venv/.twk-requirements"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  echo "oracle: $venv is up to date"
  exit 0
fi
echo "oracle: creating $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
# Fails here, not in the test, when an SDK cannot be imported.
"$venv/bin/python" "$here/sdk_oracle.py" --check
cp "$req" "$stamp"
echo "oracle: ready ($("$venv/bin/python" --version))"
