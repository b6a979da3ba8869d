#!/usr/bin/env bash
# Build the clinsight image daemonless with buildah (chroot isolation, vfs storage), from
# the debootstrap base (deploy/build-base.sh) and the host wheelhouse (deploy/wheelhouse.sh).
# Usage: deploy/build-image.sh [extra buildah bud arguments, e.g. --build-arg BASE_IMAGE=...]
set -euo pipefail
source "$(dirname "$0")/env.sh"

started=$(date +%s)
# --format docker keeps the HEALTHCHECK (the OCI image format has no field for it).
"${BUILDAH[@]}" bud --isolation chroot --format docker --layers=false \
    --build-arg "BASE_IMAGE=$BASE_TAG" "$@" \
    -f "$DEPLOY_DIR/Containerfile" -t "$IMAGE_TAG" "$REPO_DIR"
finished=$(date +%s)
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE_TAG")
mkdir -p "$BUILD_DIR"
printf '{"build_seconds": %d, "size_bytes": %s}\n' "$((finished - started))" "$size" \
    > "$BUILD_DIR/build.json"
echo "built $IMAGE_TAG in $((finished - started)) s, $((size / 1000000)) MB"
