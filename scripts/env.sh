# Sourced by the Makefile and .ci/run: where the build finds its tools and libraries.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aml-pipeline/target}"
export DUCKDB_LIB_DIR="${DUCKDB_LIB_DIR:-$HOME/.cache/aml-pipeline/duckdb-1.5.6}"
export LD_LIBRARY_PATH="$DUCKDB_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# pip installs cmake's launcher into the user's or Python's bin directory.
for d in "$HOME/.local/bin" "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)"; do
  case ":$PATH:" in *":$d:"*) ;; *) [ -d "$d" ] && export PATH="$d:$PATH" ;; esac
done
