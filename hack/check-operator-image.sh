#!/usr/bin/env bash
# Check the built operator image the way a kubelet would run it: unpack the OCI archive
# (skopeo, umoci) into a root filesystem and its runtime config, then start the image's
# own entrypoint as the image's user, with the image's environment and working directory,
# inside that root mounted read-only with an empty /tmp (the chart's pod). What it proves:
# the entrypoint exists and imports the whole operator (kopf, kubernetes, handlers) from
# the image alone, the chart's configuration validates there, a bad one exits 2, and the
# image has no torch, no compiler and no root user.
# Usage: hack/check-operator-image.sh ARCHIVE REF
set -euo pipefail
archive=$1 ref=$2
work=$(mktemp -d /tmp/lepton-image-check.XXXXXX)
trap 'umount -R "$work/rootfs-ro" 2>/dev/null || true; rm -rf "$work"' EXIT

source "$(dirname "$0")/image-lib.sh"
unpack_image "$archive" "$ref" "$work"
rootfs=$work/bundle/rootfs

fail() { echo "operator image check FAILED: $*"; exit 1; }

uid=$(field 'c["process"]["user"]["uid"]')
[ "$uid" = 65532 ] || fail "runs as uid $uid, the chart's pod runs 65532"
args=$(field '" ".join(c["process"]["args"])')
[ "$args" = lepton-operator ] || fail "entrypoint is '$args', the chart's pod has no command"
cwd=$(field 'c["process"]["cwd"]')
mapfile -t env < <(field '"\n".join(c["process"]["env"])')

found=$(find "$rootfs/opt/venv" \( -name torch -o -name onnxruntime -o -name lepton_builder \
  -o -name pip -o -name setuptools \) -print; ls -d "$rootfs"/usr/bin/{gcc,cc,c++,g++,clang}* \
  "$rootfs"/usr/lib/gcc 2>/dev/null || true)
[ -z "$found" ] || fail "carries what it must not: $found"

# The pod: the root read-only, /tmp an empty writable directory, the config mounted.
mkdir "$work/rootfs-ro" "$work/tmp" "$work/etc"
chmod 1777 "$work/tmp"
mount --bind "$rootfs" "$work/rootfs-ro"
mount -o remount,bind,ro "$work/rootfs-ro"
mount --bind "$work/tmp" "$work/rootfs-ro/tmp"
mkdir -p "$rootfs/etc/lepton" 2>/dev/null || true
mount --bind "$work/etc" "$work/rootfs-ro/etc/lepton"
run() {  # the entrypoint with extra args, as the image's user, env and cwd
  chroot --userspec=65532:65532 "$work/rootfs-ro" /usr/bin/env -i "${env[@]}" \
    LEPTON_CONFIG=/etc/lepton/config.yaml sh -c "cd '$cwd' && exec lepton-operator $*"
}

run --help | grep -q -- '--standalone' || fail "lepton-operator --help did not run"
# kopf names itself with getpass.getuser() where no POD_ID is set: the uid must be known.
who=$(chroot --userspec=65532:65532 "$work/rootfs-ro" /usr/bin/env -i "${env[@]}" \
  python3 -c 'import getpass; print(getpass.getuser())' 2>&1) \
  || fail "getpass.getuser() fails as uid 65532 (no passwd entry): $who"

echo "images: {}" > "$work/etc/config.yaml"
set +e; out=$(run --log-format plain 2>&1); rc=$?; set -e
[ $rc = 2 ] || fail "a bad configuration exited $rc, not 2: $out"

.venv/bin/python -c "import yaml,sys; print(yaml.safe_dump(yaml.safe_load(open('charts/lepton-operator/values.yaml'))['config']))" \
  > "$work/etc/config.yaml"
set +e; out=$(run --log-format plain 2>&1); rc=$?; set -e
# Past validation it looks for a cluster: none here, so the kubernetes client's error.
[[ $rc != 0 && $rc != 2 && $out == *"kube"*"config"* ]] \
  || fail "the chart's configuration did not get past validation (exit $rc): ${out: -2000}"

echo "== operator image check passed: uid 65532, entrypoint lepton-operator, read-only root,"
echo "   no torch/onnxruntime/builder/compiler/pip, chart config valid, bad config exits 2"
site=$(echo "$rootfs"/opt/venv/lib/python3*/site-packages)
echo "   unpacked: $(du -sm "$rootfs" | cut -f1) MB, of which /opt/venv $(du -sm "$rootfs/opt/venv" | cut -f1) MB"
echo "   (.pyc $(find "$site" -name __pycache__ -prune -exec du -sc {} + | tail -1 | cut -f1 | awk '{print int($1/1024)}') MB); largest in site-packages:"
(cd "$site" && du -sm -- * | sort -rn | head -12 | sed 's/^/     /')
