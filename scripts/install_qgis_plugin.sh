#!/usr/bin/env bash
# Install the AerialSeg QGIS plugin into a QGIS profile and enable it (QGIS 3.22 or newer 3.x).
#   bash scripts/install_qgis_plugin.sh          link the plugin to this repository (edits show after a QGIS restart;
#                                                the plugin finds this repository's .venv/bin/aerialseg by itself)
#   bash scripts/install_qgis_plugin.sh --copy   install a copy, as "Install from ZIP" does, and point the
#                                                provider setting at this repository's engine
# Environment: QGIS_PROFILE (default: default); QGIS_CUSTOM_CONFIG_PATH (QGIS's own variable; default
# ~/.local/share/QGIS/QGIS3, the folder that holds profiles/). Restart QGIS afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=link
case "${1:-}" in
    "") ;;
    --copy) MODE=copy ;;
    *) echo "usage: bash scripts/install_qgis_plugin.sh [--copy]" >&2; exit 2 ;;
esac
CONFIG=${QGIS_CUSTOM_CONFIG_PATH:-$HOME/.local/share/QGIS/QGIS3}
PROFILE_DIR="$CONFIG/profiles/${QGIS_PROFILE:-default}"
PLUGINS="$PROFILE_DIR/python/plugins"
DEST="$PLUGINS/aerialseg_qgis"

# QGIS's own Python (it has qgis.PyQt) writes the profile's settings the way QGIS reads them.
QPY=""
for py in /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null && "$py" -c "import qgis.PyQt.QtCore" 2>/dev/null; then QPY=$py; break; fi
done
[ -n "$QPY" ] || { echo "install: QGIS's Python (python3 with the qgis module) not found; install QGIS first (bash setup.sh qgis)" >&2; exit 1; }

mkdir -p "$PLUGINS"
rm -rf "$DEST"
if [ "$MODE" = link ]; then
    mkdir "$DEST"
    for entry in aerialseg_qgis/*; do
        case "$(basename "$entry")" in __pycache__) continue ;; esac
        ln -s "$ROOT/$entry" "$DEST/$(basename "$entry")"
    done
    ln -s "$ROOT/metadata.txt" "$DEST/metadata.txt"
    ln -s "$ROOT/LICENSE" "$DEST/LICENSE"
    ENGINE=""
else
    "$QPY" scripts/package_plugin.py --output "$ROOT/aerialseg_qgis.zip" >/dev/null
    "$QPY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$ROOT/aerialseg_qgis.zip" "$PLUGINS"
    ENGINE=$([ -x "$ROOT/.venv/bin/aerialseg" ] && echo "$ROOT/.venv/bin/aerialseg" || echo "")
fi

"$QPY" - "$PROFILE_DIR/QGIS/QGIS3.ini" "$ENGINE" <<'EOF'
import sys
from qgis.PyQt.QtCore import QSettings
settings = QSettings(sys.argv[1], QSettings.Format.IniFormat)
settings.setValue("PythonPlugins/aerialseg_qgis", True)
if sys.argv[2]:
    settings.setValue("Processing/Configuration/AERIALSEG_ENGINE", sys.argv[2])
settings.sync()
EOF
echo "install: AerialSeg plugin ${MODE}ed into $DEST and enabled in $PROFILE_DIR/QGIS/QGIS3.ini"
[ -z "$ENGINE" ] || echo "install: engine setting -> $ENGINE"
[ -x "$ROOT/.venv/bin/aerialseg" ] || echo "install: note: no engine in $ROOT/.venv yet; run 'bash setup.sh' (the plugin needs it)"
echo "install: restart QGIS; the algorithms are in the Processing Toolbox under AerialSeg (qgis_process list | grep aerialseg)"
