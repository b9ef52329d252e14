"""A resnet20 whose training rank 1 kills itself once the model is pruned (fine-tune stage).

Used by test_distributed.py as ``model.name: tests.finetune.dying_model:build`` to kill a
real rank mid-epoch without any test hook in edgeslim itself.
"""

import os
import signal

import torch

from edgeslim.models import create_model


def build(num_classes: int = 10):
    model = create_model("resnet20", num_classes=num_classes)
    calls = {"n": 0}

    def maybe_die(module, inputs):
        pruned = module.conv1.out_channels < 16
        if module.training and torch.is_grad_enabled() and pruned and os.environ.get("RANK") == "1" and os.environ.get("EDGESLIM_TEST_DIE"):
            calls["n"] += 1
            if calls["n"] == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    model.register_forward_pre_hook(maybe_die)
    return model
