"""The LeptonModel API (``lepton.ai/v1alpha1``): spec, status and CRD generation.

Pure data: no Kubernetes client, no I/O. The CRD is generated from these models.
"""

from lepton_operator.api.kube import API_VERSION, GROUP, KIND, PLURAL, VERSION
from lepton_operator.api.spec import (
    GPU_ONLY_VARIANTS,
    LeptonModelSpec,
    ModelFormat,
    PoolSpec,
    Variant,
    parse_spec,
)
from lepton_operator.api.status import (
    Condition,
    ConditionType,
    Decision,
    LeptonModelStatus,
    Phase,
    VariantStatus,
)

__all__ = [
    "API_VERSION",
    "GPU_ONLY_VARIANTS",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "Condition",
    "ConditionType",
    "Decision",
    "LeptonModelSpec",
    "LeptonModelStatus",
    "ModelFormat",
    "Phase",
    "PoolSpec",
    "Variant",
    "VariantStatus",
    "parse_spec",
]
