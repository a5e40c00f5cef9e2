#!/usr/bin/env bash
# Install Clerk and serve the demo store's bot on http://127.0.0.1:5005
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e .
exec clerk serve "$@"
