#!/usr/bin/env bash
# Set up AerialSeg in .venv (idempotent, quick when already done), then optionally run something:
#   bash setup.sh          set up only
#   bash setup.sh demo     set up, then map the sample orthophoto with the bundled default model into out/
#   bash setup.sh test     set up (QGIS too, for the plugin's tests), then run the test suite
#   bash setup.sh qgis     set up (QGIS too), then install the QGIS plugin into the default QGIS profile and enable it
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
SAMPLE=${AERIALSEG_SAMPLE:-${AERIALSEG_SHARED_DATA:-../shared/data}/rasters/nl_aerial_rd_new_1210x718.tif}

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

need_apt=()
command -v "$PY" >/dev/null || need_apt+=(python3)
"$PY" -c "import ensurepip, venv" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

[ -x "$VENV/bin/python" ] || { echo "setup: creating $VENV"; "$PY" -m venv "$VENV"; }
stamp="$VENV/.requirements.sha256"
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing pinned dependencies into $VENV (first time: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r requirements.txt
    "$VENV/bin/python" -m pip install -q --no-deps -e .
    echo "$want" > "$stamp"
fi

case "${1:-}" in
    "") echo "setup: done; try  $VENV/bin/aerialseg --help" ;;
    demo)
        [ -f "$SAMPLE" ] || { echo "setup: sample orthophoto not found at $SAMPLE (set AERIALSEG_SAMPLE=path/to/ortho.tif)" >&2; exit 1; }
        "$VENV/bin/aerialseg" map "$SAMPLE" out/ --overwrite
        echo "demo: wrote out/$(basename "${SAMPLE%.*}")_landcover.tif and out/$(basename "${SAMPLE%.*}")_features.gpkg" ;;
    test) shift; ensure_qgis; exec "$VENV/bin/python" -m pytest -q "$@" ;;
    qgis) ensure_qgis; bash scripts/install_qgis_plugin.sh ;;
    *) echo "usage: bash setup.sh [demo|test|qgis]" >&2; exit 2 ;;
esac
