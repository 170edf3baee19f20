#!/usr/bin/env bash
# Run the built builder image's entrypoint once against the digits model, the way the
# operator's build Job runs it (operator/lepton_operator/resources/build.py): unpack the
# OCI archive (skopeo, umoci), then start `lepton-build --request ...` inside that root
# mounted read-only, as the Job's uid 1000 with the image's environment and working
# directory, an emptyDir at /tmp, the model volume at /models and the source claim
# read-only at /sources/models. What it proves: the image alone (its torch, onnxruntime,
# onnx and the builder) builds, profiles and judges every CPU variant of a real model and
# writes a Triton repository, without a compiler, a writable root or the checkout.
# The digits model is trained on the host (the e2e harness's lepton_e2e.models): the
# image has no scikit-learn, and the model is the Job's input, not part of the image.
# Usage: hack/check-builder-image.sh ARCHIVE REF
set -euo pipefail
archive=$1 ref=$2
work=$(mktemp -d /tmp/lepton-builder-check.XXXXXX)
trap 'rm -rf "$work"' EXIT

fail() { echo "builder image check FAILED: $*"; exit 1; }

start=$SECONDS
source "$(dirname "$0")/image-lib.sh"
unpack_image "$archive" "$ref" "$work"
echo "   unpacked in $((SECONDS - start)) s: $(du -sm "$work/bundle/rootfs" | cut -f1) MB"
args=$(field '" ".join(c["process"]["args"])')
[ "$args" = lepton-build ] || fail "entrypoint is '$args', the build Job passes only args"
cwd=$(field 'c["process"]["cwd"]')
mapfile -t env < <(field '"\n".join(c["process"]["env"])')

# The Job's volumes: the source claim (read-only), the model volume, /tmp.
mkdir -p "$work/sources/models" "$work/models" "$work/tmp" "$work/job"
PYTHONPATH=e2e .venv/bin/python -c "
from pathlib import Path
from lepton_e2e.models import train_digits
print('   digits trained, test accuracy', round(train_digits(Path('$work/sources/models')).test_accuracy, 3))"
PYTHONPATH=e2e .venv/bin/python - "$work/job/request.json" <<'EOF'
import json, sys
from lepton_e2e import models
request = {
    "requestVersion": 1, "modelName": "digits", "pool": "cpu-standard", "device": "cpu",
    "model": {"uri": "pvc://models/digits.pt", "format": "torchscript",
              "inputs": models.DIGITS_INPUTS, "outputs": models.DIGITS_OUTPUTS},
    "optimization": {"batchSizes": [1, 16],
                     "calibrationUri": "pvc://models/digits-calibration.npz",
                     "accuracy": {"metric": "top1-agreement", "tolerance": 0.98}},
    "repository": "/models/repository",
    "servingBackends": ["onnxruntime", "pytorch"],
}
open(sys.argv[1], "w").write(json.dumps(request))
EOF
chown -R 1000:1000 "$work/models" "$work/job"
chmod 1777 "$work/tmp"

rootfs=$work/bundle/rootfs
set +e
# A mount namespace of its own: every mount below goes when the run ends.
unshare --mount --propagation private bash -euo pipefail -s "$rootfs" "$work" "$cwd" \
  "${env[@]}" > "$work/build.log" 2>&1 <<'EOF'
rootfs=$1 work=$2 cwd=$3; shift 3
# As a runtime does, the mount points are made in the root before it turns read-only.
mkdir -p "$rootfs/models" "$rootfs/sources" "$rootfs/job"
mount --bind "$rootfs" "$rootfs"
mount -o remount,bind,ro "$rootfs"
mount --rbind /dev "$rootfs/dev"
mount -t proc proc "$rootfs/proc"
mount --bind "$work/tmp" "$rootfs/tmp"
mount --bind "$work/models" "$rootfs/models"
mount --bind "$work/job" "$rootfs/job"
mount --bind "$work/sources" "$rootfs/sources"
mount -o remount,bind,ro "$rootfs/sources"
exec chroot --userspec=1000:1000 "$rootfs" /usr/bin/env -i "$@" POD_NAMESPACE=check \
  HOME=/home/builder sh -c "cd '$cwd' && exec lepton-build --request @/job/request.json \
    --report-file /job/report.json --profile-seconds 0.3 --min-iterations 5"
EOF
rc=$?
set -e
[ $rc = 0 ] || fail "lepton-build exited $rc: $(tail -c 3000 "$work/build.log")"
python3 - "$work/job/report.json" "$work/models/repository" <<'EOF' || fail "the report"
import json, pathlib, sys
report = json.load(open(sys.argv[1]))
rows = {row["name"]: row for row in report["variants"]}
for name, row in rows.items():
    p95 = "/".join(f'{p["p95Ms"]:.2f}' for p in row.get("profiles") or [])
    print(f'   {name:24} {row["status"]:9} p95 ms {p95 or "-":14} {row.get("reason") or ""}'[:150])
    assert row["status"] != "failed" or row.get("reason"), f"{name} failed without a reason"
for name in ("fp32", "onnx", "torchscript"):
    assert rows[name]["status"] == "accepted", f"{name}: {rows[name]}"
    assert rows[name]["accuracy"] == 1.0, f"{name} accuracy {rows[name]['accuracy']}"
configs = list(pathlib.Path(sys.argv[2]).glob("*/digits/config.pbtxt"))
assert configs, "no Triton model configuration written"
print(f"   Triton models written for {len(configs)} variants")
EOF
echo "== builder image check passed: lepton-build from the image, uid 1000, read-only root,"
echo "   digits built, profiled and judged; the Triton repository written ($((SECONDS - start)) s)"
