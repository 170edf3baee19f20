"""What the build's CPU computes natively, read from the kernel's CPU flags.

A bf16 variant is built for a CPU pool only where bf16 arithmetic is native (AVX512-BF16
or AMX on x86, the BF16 extension on Arm): there oneDNN runs a frozen bf16 TorchScript's
matrix products at about twice fp32's speed, with an accuracy close to fp32's. Elsewhere
torch emulates bf16 and the variant would only be a slower fp32, so it is not built.
"""

from __future__ import annotations

from pathlib import Path

# x86 flags (``flags``) and Arm features (``Features``) as /proc/cpuinfo names them.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
CPUINFO = Path("/proc/cpuinfo")


def native_bf16(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text lists a native bf16 instruction set."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and NATIVE_BF16_FLAGS & set(value.split()):
            return True
    return False


def has_native_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """This machine's answer; False where the flags cannot be read (not Linux)."""
    try:
        return native_bf16(cpuinfo.read_text())
    except OSError:
        return False
