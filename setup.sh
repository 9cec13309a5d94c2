#!/usr/bin/env bash
# Set up AerialSeg in .venv (idempotent, quick when already done), then optionally run something:
#   bash setup.sh          set up only
#   bash setup.sh demo     set up, then map the sample orthophoto with the bundled default model into out/
#   bash setup.sh test     set up, then run the test suite
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv
SAMPLE=${AERIALSEG_SAMPLE:-../shared/data/rasters/nl_aerial_rd_new_1210x718.tif}

need_apt=()
command -v "$PY" >/dev/null || need_apt+=(python3)
"$PY" -c "import ensurepip, venv" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
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
    test) shift; exec "$VENV/bin/python" -m pytest -q "$@" ;;
    *) echo "usage: bash setup.sh [demo|test]" >&2; exit 2 ;;
esac
