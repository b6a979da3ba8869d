# Shared settings of the image scripts (sourced, not run).
# Daemonless buildah/podman with the vfs storage driver and runc: works without
# overlayfs, fuse or a systemd cgroup manager.
DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$DEPLOY_DIR/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$DEPLOY_DIR/podman/containers.conf}"
BUILD_DIR="${BUILD_DIR:-$REPO_DIR/build/image}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_TAG="${BASE_TAG:-localhost/clinsight-base:$DEBIAN_SUITE}"
IMAGE_TAG="${IMAGE_TAG:-localhost/clinsight:latest}"
BUILDAH=(buildah --storage-driver vfs)
PODMAN=(podman --storage-driver vfs --runtime runc --cgroup-manager cgroupfs)
