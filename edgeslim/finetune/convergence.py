"""When has a model stopped learning? The patience rule of a converged baseline.

A baseline that is still improving when its epochs run out is not a reference: every
compressed model fine-tuned after it gets credit for what was only more training. With
``baseline.patience`` set, the baseline trains until validation accuracy has not improved
by more than ``min_delta`` for ``patience`` epochs (capped by ``baseline.epochs``), and
the weights of its best epoch are kept. :func:`verdict` says which of the two happened.

Example::

    stop = EarlyStop(patience=3, min_delta=0.001)
    for epoch, acc in enumerate([0.80, 0.85, 0.851, 0.85, 0.849], 1):
        if stop.update(epoch, acc, model):
            break           # epoch 5: no gain above 0.1 point since epoch 2
    stop.restore(model)     # the epoch-2 weights
"""

from __future__ import annotations

from typing import Any, Optional

import torch.nn as nn


class EarlyStop:
    """Tracks the best validation accuracy and its weights (kept on the CPU)."""

    def __init__(self, patience: Optional[int], min_delta: float = 0.0):
        self.patience, self.min_delta = patience, float(min_delta)
        self.best_epoch: Optional[int] = None
        self.best_accuracy: Optional[float] = None
        self.best_state: Optional[dict[str, Any]] = None

    @property
    def active(self) -> bool:
        return bool(self.patience)

    def update(self, epoch: int, accuracy: Optional[float], state: dict[str, Any]) -> bool:
        """Record epoch ``epoch`` (1-based) with its weights ``state``; True when training should stop."""
        if not self.active or accuracy is None:
            return False
        if self.best_accuracy is None or accuracy > self.best_accuracy + self.min_delta:
            self.best_epoch, self.best_accuracy = epoch, float(accuracy)
            self.best_state = {k: v.detach().cpu().clone() for k, v in state.items()}
            return False
        return epoch - self.best_epoch >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def to_state(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_accuracy": self.best_accuracy, "best_state": self.best_state}

    def load_state(self, saved: Optional[dict[str, Any]]) -> None:
        if saved:
            self.best_epoch, self.best_accuracy = saved["best_epoch"], saved["best_accuracy"]
            self.best_state = saved["best_state"]


def verdict(history: list[dict[str, Any]], *, patience: Optional[int], cap: int,
            min_delta: float = 0.0) -> dict[str, Any]:
    """Whether a training run converged by the patience rule, from its history.

    Example::

        verdict([{"epoch": 1, "val_accuracy": 0.9}, {"epoch": 2, "val_accuracy": 0.95}],
                patience=3, cap=2)["converged"]   # False: still improving at the cap
    """
    accs = [(r["epoch"], r.get("val_accuracy")) for r in history if r.get("val_accuracy") is not None]
    if not accs:
        return {"converged": None, "reason": "no validation accuracy (unlabelled data or no training)"}
    best_epoch, best = accs[0]
    for epoch, acc in accs[1:]:
        if acc > best + min_delta:
            best_epoch, best = epoch, acc
    last = accs[-1][0]
    out = {"best_epoch": best_epoch, "best_accuracy": best, "epochs_run": last, "cap": cap,
           "patience": patience, "min_delta": min_delta}
    if not patience:
        return {**out, "converged": None,
                "reason": "not checked (baseline.patience is null): trained the full baseline.epochs"}
    if last - best_epoch >= patience:
        return {**out, "converged": True,
                "reason": f"no gain above {100 * min_delta:.2g} point(s) for {last - best_epoch} epochs after "
                          f"epoch {best_epoch}; the epoch-{best_epoch} weights are kept"}
    return {**out, "converged": False,
            "reason": f"best val accuracy at epoch {best_epoch}, {last - best_epoch} epoch(s) before the end of "
                      f"the {cap}-epoch cap, fewer than patience {patience}: it did not converge; raise "
                      "baseline.epochs (compressed models may gain from training it missed)"}
