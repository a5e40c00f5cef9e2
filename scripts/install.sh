#!/usr/bin/env bash
# Install Clerk with its test dependencies: torch first, from the local CPU build (so pip
# pulls no CUDA build), then Clerk in editable mode with the `test` extra.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[test]"
