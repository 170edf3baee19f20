# Shared by the image checks (sourced, not run): unpack an OCI archive as a runtime
# would see it, and read fields of its runtime config.
# unpack_image ARCHIVE REF DIR: DIR/bundle/rootfs and DIR/bundle/config.json (umoci's
# runtime bundle), via an OCI layout removed afterwards.
unpack_image() {
  local archive=$1 ref=$2 dir=$3
  nice -n 19 skopeo copy -q "oci-archive:$archive:$ref" "oci:$dir/oci:check"
  nice -n 19 umoci unpack --image "$dir/oci:check" "$dir/bundle" >/dev/null
  rm -rf "$dir/oci"
  cfg=$dir/bundle/config.json
}
# field EXPR: a Python expression over the runtime config `c` (after unpack_image).
field() { python3 -c "import json,sys; c=json.load(open('$cfg')); print($1)"; }
