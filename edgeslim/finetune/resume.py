"""Resume inside a training stage: one checkpoint of the training state per finished epoch.

A stage's result only counts once its folder is renamed into place (``done.json``), and a
rerun deletes the stage's temporary folder, so a run killed in epoch 6 of 8 used to start
training again at epoch 1. :class:`EpochCheckpoints` keeps, in a folder outside the stage's
temporary one, the state :func:`~edgeslim.finetune.train.train` saves at every epoch end
(weights, optimizer, scaler, EMA, RNG states, epoch and step counters, history); on the
rerun ``train()`` loads it and continues at the next epoch, ending with the same weights as
an uninterrupted run on the same machine.

The pipeline gives each training stage its store at
``<run dir>/.resume/<stage folder>/<first 16 characters of the stage key>/``: another
config or other inputs are another key, so a stale state is never loaded into a different
training. The folder is deleted when the stage is done.

Example::

    store = EpochCheckpoints(run_dir / ".resume" / "20-finetune" / key[:16])
    history = train(model, data, spec, resume=store)
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from edgeslim.finetune import distributed

STATE = "state.pt"
# What torch.load(weights_only=True) reads back without unpickling code.
_PLAIN = (torch.Tensor, str, int, float, bool, type(None))


def _check_plain(obj: Any, where: str = "state") -> None:
    """Fail at save time, not silently at load time (a state weights_only refuses would make
    every rerun start over): only tensors, numbers, strings and containers of them."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}, not a str or int")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"{where} is a {type(obj).__name__}: a training checkpoint holds only "
                        "tensors, numbers, strings, lists and dicts (torch.load weights_only)")


class EpochCheckpoints:
    """The training state of one ``train()`` call, saved at each epoch end in ``directory``.

    ``load()`` returns the last saved state, or None when there is none or it cannot be read
    (a rerun then trains from the start, as without a store). ``save(state)`` replaces it
    atomically (temporary file, fsync, rename): a kill while saving leaves the previous
    epoch's state. ``log`` (e.g. ``ctx.log``) hears where training resumes.

    Example::

        store = EpochCheckpoints(Path("runs/x/.resume/20-finetune/0123456789abcdef"), log=print)
        store.save({"epoch": 1, "step": 4, "model": model.state_dict(), "rng": rng_states()})
        store.load()["epoch"]  # 1
    """

    def __init__(self, directory: Path, *, log: Optional[Callable[[str], None]] = None,
                 label: str = "training"):
        self.directory = Path(directory)
        self.log = log
        self.label = label

    @classmethod
    def at(cls, directory: Optional[Path], *, log: Optional[Callable[[str], None]] = None,
           label: str = "training") -> Optional["EpochCheckpoints"]:
        """A store in ``directory``, or None when there is no directory (library use, no run dir)."""
        return None if directory is None else cls(directory, log=log, label=label)

    @property
    def path(self) -> Path:
        return self.directory / STATE

    def sub(self, name: str, *, label: Optional[str] = None) -> "EpochCheckpoints":
        """A store for one of several trainings of a stage (lottery rounds: one per fit call)."""
        return EpochCheckpoints(self.directory / name, log=self.log, label=label or self.label)

    def load(self) -> Optional[dict[str, Any]]:
        """The last saved state (tensors on the CPU), or None when absent or unreadable.

        Under torchrun every rank calls it (all ranks must continue at the same epoch): when
        they do not all read the same epoch (a run directory that is not shared between
        machines), every rank gets None and the training starts over, together.
        """
        state = self._read()
        done = state["epoch"] if state is not None else -1
        if distributed.world()[1] > 1:
            total, squares = distributed.all_sum([float(done), float(done) ** 2])
            if total ** 2 != distributed.world()[1] * squares:  # equal iff every rank read `done`
                self._say(f"{self.label}: the processes see different checkpoints in {self.directory} "
                          "(is the run directory shared?); training from the first epoch")
                return None
        if state is not None:
            self._say(f"{self.label}: resumed after epoch {done}, continuing at epoch {done + 1}")
        return state

    def _read(self) -> Optional[dict[str, Any]]:
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated, corrupt, or not ours: train from the start
            self._say(f"{self.label}: ignoring unreadable checkpoint {self.path} "
                      f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")
            return None
        if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
            self._say(f"{self.label}: ignoring checkpoint {self.path}: it holds no epoch counter")
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (``epoch`` = epochs finished) in place of the previous one.

        Under torchrun only rank 0 writes: every rank holds the same weights and counters.
        """
        _check_plain(state)
        if distributed.world()[0] != 0:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{STATE}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def clear(self) -> None:
        """Forget every saved state (the stage is done)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def _say(self, message: str) -> None:
        if self.log is not None:
            self.log(message)


def rng_states() -> dict[str, Any]:
    """Every random generator training draws from, as tensors and ints (weights_only-safe).

    Example::

        saved = rng_states(); torch.rand(1); set_rng_states(saved)  # the same draw again
    """
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` captured (CUDA states only where CUDA is in use)."""
    torch.set_rng_state(states["torch"])
    py = states["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
