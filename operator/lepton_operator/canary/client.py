"""Triton adapter: send one inference to one pod over Triton's HTTP API."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException, np_to_triton_dtype


class CanaryUnreachable(Exception):
    """The pod did not answer at all (not a wrong answer): try again on the next pass."""


class CanaryRefused(Exception):
    """Triton answered with an error: the served model cannot take the reference input."""


def infer(
    address: str,
    model: str,
    inputs: dict[str, npt.NDArray[Any]],
    outputs: list[str],
    timeout_seconds: float = 10.0,
) -> dict[str, npt.NDArray[Any]]:
    try:
        client = triton_http.InferenceServerClient(
            address, connection_timeout=timeout_seconds, network_timeout=timeout_seconds
        )
        try:
            request = []
            for name, array in inputs.items():
                tensor = triton_http.InferInput(
                    name, list(array.shape), np_to_triton_dtype(array.dtype)
                )
                tensor.set_data_from_numpy(array)
                request.append(tensor)
            result = client.infer(
                model, request, outputs=[triton_http.InferRequestedOutput(o) for o in outputs]
            )
            return {name: result.as_numpy(name) for name in outputs}
        finally:
            client.close()
    except InferenceServerException as error:
        if error.status() is None:  # no HTTP status: the connection itself failed
            raise CanaryUnreachable(f"{address}: {error.message() or error}") from error
        raise CanaryRefused(f"Triton refused the reference input: {error.message()}") from error
    except (OSError, TimeoutError) as error:
        raise CanaryUnreachable(f"{address}: {error}") from error
