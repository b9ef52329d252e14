"""What compression did to a model: params, MACs and channels per layer, before and after."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from edgeslim.compress.pruner import count_macs_params


def channels(model: nn.Module) -> dict[str, int]:
    """Output channels (or features) of every conv and linear layer."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out[name] = m.out_channels
        elif isinstance(m, nn.Linear):
            out[name] = m.out_features
    return out


def nonzero_params(model: nn.Module) -> int:
    return int(sum(int(torch.count_nonzero(p)) for p in model.parameters()))


def compression_report(before: nn.Module, after: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    macs0, params0 = count_macs_params(before, example)
    macs1, params1 = count_macs_params(after, example)
    ch0, ch1 = channels(before), channels(after)
    return {
        "params_before": params0,
        "params_after": params1,
        "params_ratio": params1 / params0,
        "nonzero_params_after": nonzero_params(after),
        "macs_before": macs0,
        "macs_after": macs1,
        "macs_ratio": macs1 / macs0,
        "macs_reduction": round(1 - macs1 / macs0, 4),  # the fraction compress.target_macs asks for
        "channels": {n: {"before": ch0[n], "after": ch1.get(n)} for n in ch0},
    }
