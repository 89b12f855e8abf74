#!/usr/bin/env bash
# CI of the Python package (issue 13), called by .ci/run after `cargo test`: a virtual
# environment kept in ~/.cache/gdswap-ci (pip's downloads are cached in ~/.cache/pip), the
# wheel built with maturin in the workspace's target directory (so the gdswap library compiled
# by `cargo test` is reused), then python/tests with pytest. Needs python3 (3.9+).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null; then
  echo "CI needs python3 (3.9 or later) for the Python package" >&2
  exit 1
fi
VENV=${GDSWAP_CI_VENV:-$HOME/.cache/gdswap-ci/venv}
if ! "$VENV/bin/python" -c "import sys" 2>/dev/null; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install -q "maturin>=1.5,<2" numpy pytest
if ! "$VPY" -c "import torch" 2>/dev/null; then
  # The CPU build where its index is reachable, else PyPI's (it imports without a GPU).
  "$VPY" -m pip install -q --retries 0 --timeout 20 torch --index-url https://download.pytorch.org/whl/cpu 2>/dev/null ||
    "$VPY" -m pip install -q torch ||
    echo "note: torch did not install: the torch tests will be skipped" >&2
fi

# The comparison with DeepSpeed's own aio_handle (python/tests/test_deepspeed_compare.py) runs
# only with GDSWAP_CI_DEEPSPEED=1: DeepSpeed's async_io op JIT-builds with g++ on first use
# (minutes of CPU; cached in ~/.cache/gdswap-ci/torch-extensions after) and needs libaio-dev.
# Without it that test skips itself, saying so.
if [ "${GDSWAP_CI_DEEPSPEED:-0}" = 1 ]; then
  DS_SITE=$HOME/.cache/gdswap-ci/deepspeed-0.19.8
  if [ ! -f /usr/include/libaio.h ] && command -v apt-get >/dev/null; then
    apt-get install -y libaio-dev >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y libaio-dev >/dev/null; }
  fi
  if [ ! -d "$DS_SITE/deepspeed" ]; then
    # Its dependencies first (ninja's binary lands in $DS_SITE/bin), then DeepSpeed itself
    # without dependencies (torch and numpy are the venv's).
    "$VPY" -m pip install -q --target "$DS_SITE" einops hjson msgpack ninja psutil py-cpuinfo 'pydantic>=2' tqdm
    "$VPY" -m pip install -q --target "$DS_SITE" --no-deps deepspeed==0.19.8
  fi
  export PYTHONPATH="$DS_SITE" PATH="$DS_SITE/bin:$PATH" TORCH_EXTENSIONS_DIR="$HOME/.cache/gdswap-ci/torch-extensions"
fi

export CARGO_TARGET_DIR="$PWD/target" PYO3_PYTHON="$VPY"
cargo fmt --manifest-path python/Cargo.toml --check
cargo clippy --manifest-path python/Cargo.toml --all-targets -- -D warnings
rm -rf target/wheels
"$VENV/bin/maturin" build --profile dev -m python/Cargo.toml -o target/wheels
"$VPY" -m pip install -q --force-reinstall --no-deps target/wheels/gdswap-*.whl
# From the repository root: python/gdswap (the sources, without the native module) is not
# on the path, the installed wheel is what the tests import.
"$VPY" -m pytest -q -p no:cacheprovider python/tests
