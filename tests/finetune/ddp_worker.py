"""Run alone or under torchrun; saves what the test compares between 1 and 2 processes.

``train OUT``: train plain_cnn (no BatchNorm) two epochs through edgeslim's loop.
``grad-local OUT``: the same with per-rank BatchNorm statistics (the control).
``grad OUT``: one resnet20 forward/backward of a fixed global batch through the DDP model
(cross-rank BatchNorm), saving the averaged parameter gradients.
"""

import sys

import torch
import torch.nn.functional as F

from edgeslim.data import load_data
from edgeslim.finetune import distributed
from edgeslim.finetune.train import TrainSpec, train
from edgeslim.models import create_model


def main(mode: str, out: str) -> None:
    rank, size = distributed.init_from_env()
    torch.manual_seed(0)
    if mode == "train":
        model = create_model("plain_cnn", num_classes=10)
        data = load_data("digits", input_size=32, num_classes=10, limit_train=128, limit_val=32)
        history = train(model, data, TrainSpec(epochs=2, lr=0.05, batch_size=32, seed=0))
        result = {"state": model.state_dict(), "loss": [h["train_loss"] for h in history]}
    else:
        model = create_model("resnet20", num_classes=10).train()
        x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(2))
        if mode == "grad-local":  # what plain DDP does on CPU: statistics of the half batch only
            dm = distributed.DistributedModel(torch.nn.parallel.DistributedDataParallel(model)
                                              if size > 1 else model)
        else:
            dm = distributed.prepare(model)
        part = slice(rank * 32 // size, (rank + 1) * 32 // size)
        F.cross_entropy(dm.module(x[part]), y[part]).backward()
        dm.restore()
        result = {"grads": {n: p.grad for n, p in model.named_parameters()},
                  "running_var": model.bn1.running_var.clone()}
    if rank == 0:
        torch.save(result, out)
    distributed.finish()


if __name__ == "__main__":
    main(*sys.argv[1:])
