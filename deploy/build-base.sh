#!/usr/bin/env bash
# Build the base image from Debian packages with debootstrap and import it, so that
# no image registry is needed (air-gapped hospitals; this build machine).
# Usage: deploy/build-base.sh   (root; Debian mirror in DEBIAN_MIRROR)
set -euo pipefail
source "$(dirname "$0")/env.sh"

ROOTFS="$BUILD_DIR/rootfs-$DEBIAN_SUITE"
if "${PODMAN[@]}" image exists "$BASE_TAG"; then
    echo "base image $BASE_TAG exists; remove it to rebuild"
    exit 0
fi
rm -rf "$ROOTFS"
mkdir -p "$BUILD_DIR"
# python3 of bookworm is 3.11: the same minor version the wheelhouse is built for.
# libgomp1: OpenMP of LightGBM and scikit-learn.
debootstrap --variant=minbase \
    --include=python3,python3-venv,ca-certificates,libgomp1 \
    "$DEBIAN_SUITE" "$ROOTFS" "$DEBIAN_MIRROR"
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/var/log/*
tar --numeric-owner -C "$ROOTFS" -c . | "${PODMAN[@]}" import \
    --change 'CMD ["/usr/bin/python3"]' - "$BASE_TAG"
rm -rf "$ROOTFS"
echo "imported $BASE_TAG"
