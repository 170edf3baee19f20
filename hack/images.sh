#!/usr/bin/env bash
# `make images`: build the project's images into OCI archives with Debian's buildah, no
# daemon (vfs storage, chroot isolation, as root), then check the operator image from its
# own unpacked root filesystem, and the builder image's entrypoint against the digits model
# from its own. `make test` builds the operator's and the activator's images alone (the e2e
# harness runs them: e2e/lepton_e2e/shipped_images.py); the builder's and Triton's are left
# to `make images` (gigabytes of torch and CUDA; NGC's base).
#
# Why a local base: this workplace reaches package registries but no image registry, so
# with BASE empty a Debian bookworm root filesystem with python3 is made by mmdebstrap from
# Debian's packages and passed as the Dockerfiles' BASE build argument; the Dockerfiles
# keep their public base by default for everyone else (BASE=python:3.11-slim-bookworm
# here uses it). Triton has no stand-in: its Dockerfile extends NGC's image.
#
# Environment: IMAGES (default "operator builder activator triton"), BASE (default: the local base),
# VERSION (default: the chart's appVersion), OUT (default build/images).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGES=${IMAGES:-operator builder activator triton}
OUT=${OUT:-build/images}
VERSION=${VERSION:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/lepton-operator/Chart.yaml)}
REGISTRY=ghcr.io/lepton-ai
BUILDAH=(nice -n 19 buildah --storage-driver vfs)
mkdir -p "$OUT"

for tool in buildah mmdebstrap umoci skopeo; do
  command -v "$tool" >/dev/null || { echo "$tool missing: make deps installs it"; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "buildah's vfs storage and chroot isolation need root here"; exit 1; }

# The local base's Debian packages. libpython3.11: python:3.11-slim's interpreter is built
# shared, and Triton's python backend stub (the builder's serving search) links against
# libpython3.11.so.1.0, which Debian's python3 alone does not install.
BASE_PACKAGES=python3,python3-venv,libpython3.11
base_key=$(echo "$BASE_PACKAGES" | sha256sum | cut -c1-8)
if [ -z "${BASE:-}" ]; then
  BASE=localhost/lepton-base:bookworm-$base_key
  # Cached beside the cluster binaries, so a new clone (CI, make test) reuses it.
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/lepton-operator/base-bookworm-$base_key
  if [ ! -s "$cache/base.tar" ]; then
    echo "== local base: mmdebstrap bookworm + $BASE_PACKAGES (Debian's packages)"
    mkdir -p "$cache"
    nice -n 19 mmdebstrap --variant=minbase --format=tar --include="$BASE_PACKAGES" bookworm "$cache/base.tar.part"
    mv "$cache/base.tar.part" "$cache/base.tar"
  fi
  if ! "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
    "${BUILDAH[@]}" bud --isolation chroot -f hack/base.Containerfile -t "$BASE" "$cache"
  fi
fi

# The archive's size: its layers gzip-compressed, as a registry would store them.
report() {
  local name=$1 archive=$2
  echo "== $name: $(du -m "$archive" | cut -f1) MB archive ($archive)"
}

for image in $IMAGES; do
  ref="$REGISTRY/lepton-$image:$VERSION"
  archive="$OUT/lepton-$image.oci.tar"
  base_arg=(--build-arg "BASE=$BASE")
  [ "$image" = triton ] && base_arg=()   # NGC's Triton or nothing: no Debian stand-in
  # pip inside the build trusts what the host's pip trusts (a TLS-inspecting proxy's CA).
  ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
  [ -s "$ca" ] && base_arg+=(--volume "$ca:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
  echo "== building $ref from runtimes/$image/Dockerfile (BASE=${base_arg[*]:-its own})"
  start=$SECONDS
  "${BUILDAH[@]}" bud --isolation chroot --layers=false "${base_arg[@]}" \
    -f "runtimes/$image/Dockerfile" -t "$ref" .
  rm -f "$archive"
  "${BUILDAH[@]}" push "$ref" "oci-archive:$archive:$ref"
  echo "   built in $((SECONDS - start)) s"
  report "$ref" "$archive"
  # Only the archive stays: vfs storage holds a full copy of every layer.
  "${BUILDAH[@]}" rmi "$ref" >/dev/null
  # Each image checked as soon as it is built (a later image's failure keeps the result).
  case $image in
    operator | builder) PYTHONPATH=e2e .venv/bin/python -m lepton_e2e check-image "$image" "$archive" ;;
  esac
done

# Leave no working containers or images in vfs storage but the base, which the next
# build starts from (the e2e harness rebuilds the operator's and the activator's images at
# each source change).
"${BUILDAH[@]}" rm --all >/dev/null
for id in $("${BUILDAH[@]}" images --noheading --format '{{.Name}}:{{.Tag}}' | grep -vx "localhost/lepton-base:bookworm-$base_key"); do
  "${BUILDAH[@]}" rmi "$id" >/dev/null 2>&1 || true
done
"${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
