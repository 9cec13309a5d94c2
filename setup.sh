#!/usr/bin/env bash
# Set up AerialSeg in .venv (idempotent, quick when already done), then optionally run something:
#   bash setup.sh          set up everything (pinned test environment, requirements.txt), no run
#   bash setup.sh demo     set up only what the demo needs (the engine's base install: CPU inference, no torch,
#                          no test tools), then map the sample orthophoto (data/sample) with the default model into out/
#   bash setup.sh test     set up everything (QGIS too, for the plugin's tests), then run the test suite
#   bash setup.sh qgis     set up everything (QGIS too), then install the QGIS plugin into the default QGIS profile
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv

# The shared real data (never copied into the repository): $AERIALSEG_SHARED_DATA, else ../shared/data
# beside this checkout, else beside the checkout this one was cloned from.
find_shared_data() {
    local origin
    origin=$(git config --get remote.origin.url 2>/dev/null || true)
    for d in "${AERIALSEG_SHARED_DATA:-}" ../shared/data "${origin:+$origin/../shared/data}"; do
        if [ -n "$d" ] && [ -d "$d/rasters" ]; then (cd "$d" && pwd); return 0; fi
    done
}
AERIALSEG_SHARED_DATA=$(find_shared_data || true)
export AERIALSEG_SHARED_DATA
SAMPLE=${AERIALSEG_SAMPLE:-data/sample/banepa_sample.tif}

SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)

ensure_qgis() {  # QGIS 3.22+ with qgis_process and its Python: the plugin's runtime and its tests
    if { command -v qgis_process.bin || command -v qgis_process; } >/dev/null && /usr/bin/python3 -c "import qgis.core" 2>/dev/null; then
        return 0
    fi
    command -v apt-get >/dev/null || { echo "setup: QGIS not found; install QGIS 3.22 or newer (with qgis_process and its Python bindings)" >&2; exit 1; }
    echo "setup: installing QGIS with apt-get (first time: a few minutes)"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qgis python3-qgis qgis-providers
}

python_ok() { "$PY" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; }

if ! python_ok; then  # fail before installing anything; the full set-up may install it with apt
    if [ "${1:-}" = demo ] || ! command -v apt-get >/dev/null; then
        echo "setup: error: needs Python 3.10 or newer with venv ('$PY'); install it (Debian/Ubuntu: apt install python3 python3-venv; else python.org) or set PYTHON=/path/to/python3" >&2
        exit 1
    fi
    echo "setup: installing python3 and python3-venv with apt-get"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3 python3-venv
    python_ok || { echo "setup: error: '$PY' is not Python 3.10 or newer with venv; set PYTHON=/path/to/python3" >&2; exit 1; }
fi

[ -x "$VENV/bin/python" ] || { echo "setup: creating $VENV"; "$PY" -m venv "$VENV"; }
full_stamp="$VENV/.requirements.sha256"
full=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)

install_base() {  # the engine and its base dependencies (onnxruntime for the CPU), nothing else
    local stamp="$VENV/.base.sha256" want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    [ "$(cat "$full_stamp" 2>/dev/null)" = "$full" ] && return 0  # the full set-up includes the base
    [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
    echo "setup: installing the engine (base install: CPU inference) into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e .
    echo "$want" > "$stamp"
}

install_full() {  # the pinned test environment: every extra, onnxruntime-gpu, test and lint tools
    [ "$(cat "$full_stamp" 2>/dev/null)" = "$full" ] && return 0
    echo "setup: installing pinned dependencies into $VENV (first time: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r requirements.txt
    "$VENV/bin/python" -m pip install -q --no-deps -e .
    if "$VENV/bin/python" -m pip show -q onnxruntime 2>/dev/null; then  # a demo's CPU build would shadow the GPU one
        "$VENV/bin/python" -m pip uninstall -q -y onnxruntime
        "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$(grep '^onnxruntime-gpu' requirements.txt)"
    fi
    echo "$full" > "$full_stamp"
}

case "${1:-}" in
    "") install_full; echo "setup: done; try  $VENV/bin/aerialseg --help" ;;
    demo)
        [ -f "$SAMPLE" ] || { echo "setup: error: sample orthophoto not found at $SAMPLE" >&2; exit 1; }
        install_base
        "$VENV/bin/aerialseg" map "$SAMPLE" out/ --overwrite
        echo "demo: wrote out/$(basename "${SAMPLE%.*}")_landcover.tif and out/$(basename "${SAMPLE%.*}")_features.gpkg" ;;
    test) shift; install_full; ensure_qgis; exec "$VENV/bin/python" -m pytest -q "$@" ;;
    qgis) install_full; ensure_qgis; bash scripts/install_qgis_plugin.sh ;;
    *) echo "usage: bash setup.sh [demo|test|qgis]" >&2; exit 2 ;;
esac
