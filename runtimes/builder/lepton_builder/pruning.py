"""Structured pruning: whole attention heads, feed-forward channels and convolution
channels removed, so what is left is a smaller dense model that ordinary kernels run
faster. Unstructured (sparse) pruning is not built: no kernel in our runtimes (ONNX
Runtime CPU, TorchScript) turns scattered zeros into speed, so it would only cost
accuracy.

What goes is ranked by how much it contributes on the calibration inputs: a head by the
size of what it writes into the residual stream (its context through its slice of the
output projection), a feed-forward or convolution channel by its mean activation times
the size of the weights that read it. Each prunable layer loses the same share, at
least one unit always stays.
"""

from __future__ import annotations

import copy
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Arrays = list[npt.NDArray[Any]]


@dataclass
class Pruned:
    module: Any  # the smaller torch module, same signature
    removed: dict[str, int] = field(default_factory=dict)  # unit kind -> how many went
    kept: dict[str, int] = field(default_factory=dict)  # unit kind -> how many stayed

    def summary(self) -> str:
        parts = [f"{self.removed[k]} of {self.removed[k] + self.kept[k]} {k}" for k in self.removed]
        return "removed " + ", ".join(parts)


def drop_count(units: int, ratio: float) -> int:
    """How many of a layer's units go at ``ratio``: rounded, never all of them."""
    return min(max(round(units * ratio), 0), units - 1)


def keep_indices(importance: npt.NDArray[np.floating[Any]], ratio: float) -> list[int]:
    """The most important units, in their original order."""
    drop = drop_count(len(importance), ratio)
    order = np.argsort(importance, kind="stable")  # least important first
    return sorted(int(i) for i in order[drop:])


def prune(module: Any, calibration: Arrays, ratio: float, token_mask: Any | None) -> Pruned:
    """``module`` (not changed) pruned by ``ratio`` of each layer's heads and channels.

    ``token_mask`` ([batch, seq], for transformers) keeps padded positions out of the
    importance scores: they are most of the positions of short sentences.
    """
    if not 0 < ratio < 1:
        raise ValueError(f"a pruning ratio is between 0 and 1, not {ratio}")
    encoder = bert_encoder(module)
    if encoder is not None:
        return _prune_transformer(module, encoder, calibration, ratio, token_mask)
    sequential = _eager_sequential(module)
    if sequential is not None:
        return _prune_sequential(sequential, calibration, ratio)
    raise ValueError(
        "structured pruning knows BERT-style encoders and sequential CNNs; this model is "
        f"{getattr(module, 'original_name', type(module).__name__)}"
    )


def device_of(module: Any) -> Any:
    import torch

    parameter = next(iter(module.parameters()), None)
    return torch.device("cpu") if parameter is None else parameter.device


def run_once(module: Any, arrays: Arrays) -> Any:
    import torch

    device = device_of(module)
    with torch.inference_mode():
        return module(*[torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays])


# ---- transformers ----------------------------------------------------------------------
def bert_encoder(module: Any) -> Any | None:
    inner = getattr(module, "model", module)
    layers = getattr(getattr(inner, "encoder", None), "layer", None)
    if layers is None or not len(layers):
        return None
    first = layers[0]
    needed = ("attention", "intermediate", "output")
    if not all(hasattr(first, name) for name in needed):
        return None
    if not hasattr(first.attention, "self") or not hasattr(first.attention.self, "query"):
        return None
    return inner.encoder


def encoder_of(module: Any) -> Any:
    encoder = bert_encoder(module)
    if encoder is None:
        raise ValueError("not a BERT-style encoder")
    return encoder


def _prune_transformer(
    module: Any, encoder: Any, calibration: Arrays, ratio: float, token_mask: Any | None
) -> Pruned:
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    scores = _transformer_scores(module, encoder, calibration, token_mask)
    pruned = copy.deepcopy(module).eval()
    layers = encoder_of(pruned).layer
    result = Pruned(pruned, {"heads": 0, "ffn channels": 0}, {"heads": 0, "ffn channels": 0})
    for layer, (head_scores, channel_scores) in zip(layers, scores, strict=True):
        attention = layer.attention.self
        size = attention.attention_head_size
        heads = keep_indices(head_scores, ratio)
        index: Any = torch.cat([torch.arange(h * size, (h + 1) * size) for h in heads]).long()
        index = index.to(attention.query.weight.device)
        attention.query = prune_linear_layer(attention.query, index, dim=0)
        attention.key = prune_linear_layer(attention.key, index, dim=0)
        attention.value = prune_linear_layer(attention.value, index, dim=0)
        layer.attention.output.dense = prune_linear_layer(layer.attention.output.dense, index, 1)
        # transformers 5 infers the head count from the projections' widths; these are
        # kept true for anyone reading them.
        attention.num_attention_heads = len(heads)
        attention.all_head_size = len(heads) * size
        channels: Any = torch.as_tensor(keep_indices(channel_scores, ratio)).long()
        channels = channels.to(attention.query.weight.device)
        layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, channels, 0)
        layer.output.dense = prune_linear_layer(layer.output.dense, channels, 1)
        result.removed["heads"] += len(head_scores) - len(heads)
        result.kept["heads"] += len(heads)
        result.removed["ffn channels"] += len(channel_scores) - len(channels)
        result.kept["ffn channels"] += len(channels)
    return result


def _transformer_scores(
    module: Any, encoder: Any, calibration: Arrays, token_mask: Any | None
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Per layer: each head's and each feed-forward channel's mean contribution."""
    import torch

    weights = (
        None
        if token_mask is None
        else torch.as_tensor(np.asarray(token_mask), dtype=torch.float32)
        .unsqueeze(-1)
        .to(device_of(module))
    )

    def mean_over_tokens(values: torch.Tensor) -> torch.Tensor:  # [b, t, n] -> [n]
        if weights is None:
            return values.reshape(-1, values.shape[-1]).mean(0)
        return (values * weights).sum((0, 1)) / weights.sum().clamp(min=1)

    heads: list[torch.Tensor] = []
    channels: list[torch.Tensor] = []
    hooks = []
    for layer in encoder.layer:
        attention = layer.attention.self
        size = attention.attention_head_size
        projection = layer.attention.output.dense.weight.detach()  # [hidden, heads*size]
        reader = layer.output.dense.weight.detach()  # [hidden, ffn]

        def on_context(_m: Any, args: Any, size: int = size, projection: Any = projection) -> None:
            context = args[0]  # [b, t, heads*size]
            count = context.shape[-1] // size
            parts = context.reshape(*context.shape[:-1], count, size)
            written = torch.einsum("btns,hns->btnh", parts, projection.reshape(-1, count, size))
            heads.append(mean_over_tokens(written.norm(dim=-1)))

        def on_activation(_m: Any, _args: Any, output: Any, reader: Any = reader) -> None:
            channels.append(mean_over_tokens(output.abs()) * reader.norm(dim=0))

        hooks.append(layer.attention.output.dense.register_forward_pre_hook(on_context))
        hooks.append(layer.intermediate.register_forward_hook(on_activation))
    try:
        run_once(module, calibration)
    finally:
        for hook in hooks:
            hook.remove()
    return [
        (h.double().cpu().numpy(), c.double().cpu().numpy())
        for h, c in zip(heads, channels, strict=True)
    ]


# ---- sequential CNNs -------------------------------------------------------------------
_ACTIVATIONS = ("ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "LeakyReLU", "Dropout", "Identity")


def _eager_sequential(module: Any) -> Any | None:
    """An eager ``nn.Sequential`` of the layers we know how to slice, or None.

    A TorchScript ``Sequential`` (how the digits CNN ships) is rebuilt layer by layer:
    a scripted module keeps its constructor attributes and weights, a traced one does
    not (its strides live in the graph), so only scripted ones are taken.
    """
    import torch
    from torch import nn

    name = getattr(module, "original_name", type(module).__name__)
    if name != "Sequential":
        return None
    if not isinstance(module, torch.jit.ScriptModule):
        return copy.deepcopy(module).eval() if isinstance(module, nn.Sequential) else None
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    children: list[tuple[str, Any]] = list(module.named_children())
    for child_name, child in children:
        kind = getattr(child, "original_name", "")
        if kind == "Conv2d":
            if not hasattr(child, "stride"):
                return None
            weight = child.weight
            layer: nn.Module = nn.Conv2d(
                weight.shape[1] * child.groups,
                weight.shape[0],
                tuple(weight.shape[2:]),
                stride=tuple(child.stride),
                padding=child.padding if isinstance(child.padding, str) else tuple(child.padding),
                dilation=tuple(child.dilation),
                groups=child.groups,
                bias=child.bias is not None,
                padding_mode=child.padding_mode,
            )
        elif kind == "Linear":
            layer = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
        elif kind == "Flatten":
            if not hasattr(child, "start_dim"):
                return None
            layer = nn.Flatten(child.start_dim, child.end_dim)
        elif kind in _ACTIVATIONS:
            layer = getattr(nn, kind)()
        else:
            return None
        layer.load_state_dict(child.state_dict())
        layers[child_name] = layer
    return nn.Sequential(layers).eval()


def _prune_sequential(model: Any, calibration: Arrays, ratio: float) -> Pruned:
    """Each Conv2d's output channels and each hidden Linear's units, ranked and sliced.

    A unit can go only when the next weighted layer is reached through element-wise
    layers (activations) or one Flatten; the last weighted layer (the outputs) stays.
    """
    import torch
    from torch import nn

    layers = list(model)
    weighted = [i for i, m in enumerate(layers) if isinstance(m, (nn.Conv2d, nn.Linear))]
    activations: dict[int, torch.Tensor] = {}
    hooks = []
    for position, following in itertools.pairwise(weighted):
        between = layers[position + 1 : following]
        if not all(type(m).__name__ in _ACTIVATIONS or isinstance(m, nn.Flatten) for m in between):
            continue
        if isinstance(layers[position], nn.Conv2d) and layers[position].groups != 1:
            continue
        if isinstance(layers[following], nn.Conv2d) and layers[following].groups != 1:
            continue
        last = layers[following - 1] if following - 1 > position else layers[position]

        def keep(_m: Any, _a: Any, output: Any, position: int = position) -> None:
            activations[position] = output.detach()

        hooks.append(last.register_forward_hook(keep))
    try:
        run_once(model, calibration)
    finally:
        for hook in hooks:
            hook.remove()
    result = Pruned(model, {"conv channels": 0, "hidden units": 0}, {})
    result.kept = {"conv channels": 0, "hidden units": 0}
    for position in sorted(activations):
        following = next(i for i in weighted if i > position)
        producer, reader = layers[position], layers[following]
        output = activations[position]
        units = producer.weight.shape[0]
        mean = output.abs().transpose(0, 1).reshape(units, -1).mean(1)  # per channel/unit
        spatial = 1
        if isinstance(reader, nn.Linear) and isinstance(producer, nn.Conv2d):
            spatial = reader.in_features // units  # Flatten is channel-major
        read = reader.weight.detach().reshape(reader.weight.shape[0], units, spatial, -1)
        importance = (mean * read.transpose(0, 1).reshape(units, -1).norm(dim=1)).cpu().numpy()
        kept = keep_indices(importance, ratio)
        _slice_outputs(producer, kept)
        _slice_inputs(reader, kept, spatial)
        kind = "conv channels" if isinstance(producer, nn.Conv2d) else "hidden units"
        result.removed[kind] += units - len(kept)
        result.kept[kind] += len(kept)
    for kind in [k for k, v in result.kept.items() if v == 0]:
        del result.kept[kind], result.removed[kind]
    if not result.kept:
        raise ValueError("this sequential model has no layer whose outputs can be pruned")
    return result


def _slice_outputs(layer: Any, kept: list[int]) -> None:
    import torch

    index = torch.as_tensor(kept, device=layer.weight.device).long()
    layer.weight = torch.nn.Parameter(layer.weight.detach()[index].clone())
    if layer.bias is not None:
        layer.bias = torch.nn.Parameter(layer.bias.detach()[index].clone())
    if isinstance(layer, torch.nn.Conv2d):
        layer.out_channels = len(kept)
    else:
        layer.out_features = len(kept)


def _slice_inputs(layer: Any, kept: list[int], spatial: int) -> None:
    import torch

    if spatial > 1:  # a Linear reading a flattened feature map, channel-major
        index = torch.cat([torch.arange(c * spatial, (c + 1) * spatial) for c in kept]).long()
    else:
        index = torch.as_tensor(kept, device=layer.weight.device).long()
    layer.weight = torch.nn.Parameter(layer.weight.detach()[:, index].clone())
    if isinstance(layer, torch.nn.Conv2d):
        layer.in_channels = len(kept)
    else:
        layer.in_features = len(index)
