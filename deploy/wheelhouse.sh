#!/usr/bin/env bash
# Build the wheelhouse the image installs from with `pip install --no-index`:
# clinsight's own wheel and every runtime dependency, resolved on the host from the
# configured indexes (here: the local PyPI mirror and /opt/wheels for the CPU torch
# wheel) under constraints.txt. LOCK=file adds a second constraints file, e.g. the
# `pip freeze` of a tested virtualenv, so the image gets the tested versions.
# Usage: deploy/wheelhouse.sh   (PYTHON=python3.11 by default; must match the image's)
set -euo pipefail
source "$(dirname "$0")/env.sh"

PYTHON="${PYTHON:-python3.11}"
WHEELS="$BUILD_DIR/wheelhouse"
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ "$version" != 3.11 ]]; then
    echo "the image's Python is 3.11 (Debian bookworm); $PYTHON is $version" >&2
    exit 1
fi
mkdir -p "$WHEELS"
extra=()
if [[ -n "${LOCK:-}" ]]; then
    extra+=(-c "$LOCK")
fi
# Pure-Python sdists (a few small packages ship only those) are built into wheels here.
"$PYTHON" -m pip wheel --quiet --wheel-dir "$WHEELS" \
    -c "$REPO_DIR/constraints.txt" "${extra[@]}" "$REPO_DIR"
ls "$WHEELS" | sed 's/-[0-9].*//' | sort > "$BUILD_DIR/wheelhouse.txt"
echo "$(ls "$WHEELS" | wc -l) wheels, $(du -sm "$WHEELS" | cut -f1) MB in $WHEELS"
