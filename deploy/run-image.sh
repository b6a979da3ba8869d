#!/usr/bin/env bash
# Run the clinsight image daemonless (podman, vfs storage, runc, cgroupfs), hardened as in
# Kubernetes: read-only root (tmpfs /tmp), no capabilities, no privilege escalation, the
# image's non-root user (uid 10001). HOME_DIR is mounted as CLINSIGHT_HOME (the store,
# keys, TLS files) and REGISTRY_DIR as the model registry; both owned by uid 10001.
# Usage: deploy/run-image.sh NAME HOME_DIR REGISTRY_DIR PORT [podman options, e.g. -e K=V]
# The service listens on 127.0.0.1:PORT of the host (host network: no bridge needed).
set -euo pipefail
source "$(dirname "$0")/env.sh"

name=$1 home=$2 registry=$3 port=$4
shift 4
# With vfs, `create` copies the image's file system: it is timed apart from the start.
"${PODMAN[@]}" create --name "$name" \
    --read-only --read-only-tmpfs \
    --cap-drop ALL --security-opt no-new-privileges \
    --network host -e CLINSIGHT_HOST=127.0.0.1 -e "CLINSIGHT_PORT=$port" \
    --volume "$home:/var/lib/clinsight" \
    --volume "$registry:/var/lib/clinsight/registry" \
    "$@" "$IMAGE_TAG" >/dev/null
# Without systemd podman cannot schedule the image's HEALTHCHECK timer and says so; the
# check still runs on `podman healthcheck run NAME`.
if ! output=$("${PODMAN[@]}" start "$name" 2>&1); then
    echo "$output" >&2
    exit 1
fi
grep -v 'systemd connection' <<<"$output" || true
