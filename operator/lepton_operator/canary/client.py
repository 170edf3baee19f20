"""Triton adapter: send one inference to one pod over Triton's HTTP API, on the event
loop (tritonclient's aiohttp client), so that a pod slow to answer holds no worker."""

from __future__ import annotations

from typing import Any

import aiohttp
import numpy.typing as npt
import tritonclient.http as triton_http
import tritonclient.http.aio as triton_aio
from tritonclient.utils import InferenceServerException, np_to_triton_dtype


class CanaryUnreachable(Exception):
    """The pod did not answer at all (not a wrong answer): try again on the next pass."""


class CanaryRefused(Exception):
    """Triton answered with an error: the served model cannot take the reference input."""


def _request(
    inputs: dict[str, npt.NDArray[Any]], outputs: list[str]
) -> tuple[list[triton_http.InferInput], list[triton_http.InferRequestedOutput]]:
    tensors = []
    for name, array in inputs.items():
        tensor = triton_http.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors, [triton_http.InferRequestedOutput(o) for o in outputs]


def _refused_or_unreachable(address: str, error: InferenceServerException) -> Exception:
    if error.status() is None:  # no HTTP status: the connection itself failed
        return CanaryUnreachable(f"{address}: {error.message() or error}")
    return CanaryRefused(f"Triton refused the reference input: {error.message()}")


async def infer(
    address: str,
    model: str,
    inputs: dict[str, npt.NDArray[Any]],
    outputs: list[str],
    timeout_seconds: float = 10.0,
) -> dict[str, npt.NDArray[Any]]:
    """Send the inputs to ``model`` on the pod at ``address``; its outputs. Raises
    CanaryUnreachable when the pod does not answer, CanaryRefused when Triton refuses."""
    try:
        async with triton_aio.InferenceServerClient(
            address, conn_timeout=timeout_seconds
        ) as client:
            tensors, wanted = _request(inputs, outputs)
            result = await client.infer(model, tensors, outputs=wanted)
            return {name: result.as_numpy(name) for name in outputs}
    except InferenceServerException as error:
        raise _refused_or_unreachable(address, error) from error
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        raise CanaryUnreachable(f"{address}: {error!r}") from error
