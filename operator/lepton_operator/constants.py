"""Names the operator shares with the cluster: labels, annotations, ports.

At the bottom of the import graph (it imports nothing of the operator), so that the
object builders, the canary gate, the watches and the cache can all agree on a label
without importing each other; the import contract in pyproject.toml keeps the graph
free of cycles.
"""

from __future__ import annotations

# Labels on everything the operator creates (and the server-side watch filter).
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "lepton-operator"
MODEL_LABEL = "lepton.ai/model"
POOL_LABEL = "lepton.ai/pool"
COMPONENT_LABEL = "lepton.ai/component"
BUILD_HASH_LABEL = "lepton.ai/build-hash"

# A serving pod's readiness gate, answered by the canary check.
GATE = "lepton.ai/canary"
# On serving pods: the variant they serve, and its name inside Triton.
ANNOTATION_VARIANT = "lepton.ai/variant"
ANNOTATION_TRITON_MODEL = "lepton.ai/triton-model"

# Triton's ports in serving pods (and the Service's).
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002

# Scale from zero: the activator (runtimes/activator) writes these on a LeptonModel.
# Unix seconds of the latest request it holds for the model (renewed while some wait).
ANNOTATION_DEMAND_AT = "lepton.ai/demand-at"
# JSON: the waits of the latest held burst, once all of it left the activator's queue.
ANNOTATION_ACTIVATOR_WAIT = "lepton.ai/activator-wait"
ACTIVATOR_COMPONENT = "activator"
