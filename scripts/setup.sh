#!/usr/bin/env bash
# Installs what building and testing aml-pipeline needs, idempotently:
#   - libclang (bindgen) and a CMake >= 3.28 (LightGBM 4.7, built by lightgbm3-sys)
#   - a prebuilt libduckdb.so from the npm registry (linked by the build: pipeline query/serve)
#   - Python packages used by tests (lightgbm, pyarrow, pandas, pydantic; moto[server] as a local S3)
# Then `source scripts/env.sh` sets the paths the build needs.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

need_apt=()
dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
dpkg -s libgomp1 >/dev/null 2>&1 || need_apt+=(libgomp1)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

if ! cmake --version 2>/dev/null | awk 'NR==1{split($3,v,"."); exit !(v[1]>3 || (v[1]==3 && v[2]>=28))}'; then
  echo "setup: installing cmake>=3.28 with pip"
  python3 -m pip install -q 'cmake>=3.28,<4'
fi

py_need=()
python3 -c 'import lightgbm, sys; sys.exit(lightgbm.__version__ != "4.7.0")' 2>/dev/null || py_need+=('lightgbm==4.7.0')
python3 -c 'import pyarrow' 2>/dev/null || py_need+=('pyarrow')
python3 -c 'import pandas' 2>/dev/null || py_need+=('pandas')
# pydantic: tests/template_models.py parses the API's answers with the miner template's models
python3 -c 'import pydantic' 2>/dev/null || py_need+=('pydantic>=2')
# moto's standalone S3 server, started on loopback by tests/it/fetch.rs
python3 -c 'import moto, flask, flask_cors' 2>/dev/null || py_need+=('moto[server]')
if [ ${#py_need[@]} -gt 0 ]; then
  echo "setup: installing Python packages ${py_need[*]}"
  python3 -m pip install -q "${py_need[@]}"
fi

# Prebuilt DuckDB shared library (DuckDB 1.5.6 with Parquet built in).
DUCKDB_DIR="${DUCKDB_LIB_DIR:-$HOME/.cache/aml-pipeline/duckdb-1.5.6}"
if [ ! -f "$DUCKDB_DIR/libduckdb.so" ]; then
  echo "setup: fetching libduckdb.so from npm into $DUCKDB_DIR"
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack -q '@duckdb/node-bindings-linux-x64@1.5.6-r.1' >/dev/null && tar xzf ./*.tgz); then
    mkdir -p "$DUCKDB_DIR"
    cp "$(find "$tmp" -name 'libduckdb.so' | head -n1)" "$DUCKDB_DIR/"
  else
    echo "setup: error: could not fetch libduckdb.so with npm; the build links it (pipeline query/serve)." >&2
    echo "       Check the npm registry is reachable, or build with --features bundled (compiles DuckDB, ~35 min)." >&2
    rm -rf "$tmp"
    exit 1
  fi
  rm -rf "$tmp"
fi
echo "setup: done"
