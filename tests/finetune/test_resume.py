"""Resume inside a training stage: the per-epoch store, its place in the run directory, and
that a training stopped after an epoch and resumed ends with the weights of one that was not."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from edgeslim.data import load_data
from edgeslim.finetune.resume import STATE, EpochCheckpoints, rng_states, set_rng_states
from edgeslim.finetune.train import TrainSpec, make_optimizer
from edgeslim.finetune.trainer import LoopTrainer
from edgeslim.pipeline.stage import RESUME, drop_resume, resume_dir, run_stage


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))


def _draws() -> tuple:
    return torch.rand(3).tolist(), random.random(), float(np.random.rand()), float(np.random.randn())


def _state(model: nn.Module, epoch: int) -> dict:
    opt = make_optimizer(model.parameters(), TrainSpec(1, 0.1))
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()  # momentum buffers exist
    return {"epoch": epoch, "step": 4 * epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scaler": None, "ema": None, "rng": rng_states(),
            "history": [{"epoch": 1, "lr": 0.1, "train_loss": 2.3, "train_accuracy": None, "val_accuracy": 0.5}]}


def test_state_round_trips_through_the_file(tmp_path):
    model, logs = _tiny(), []
    state = _state(model, 1)
    EpochCheckpoints(tmp_path / "s").save(state)
    back = EpochCheckpoints(tmp_path / "s", log=logs.append, label="fine-tune").load()  # a new process' view
    assert back["epoch"] == 1 and back["step"] == 4 and back["history"] == state["history"]
    assert back["scaler"] is None and back["ema"] is None
    assert back["model"].keys() == state["model"].keys()
    assert all(torch.equal(back["model"][k], v) for k, v in state["model"].items())
    restored = make_optimizer(_tiny().parameters(), TrainSpec(1, 0.1))
    restored.load_state_dict(back["optimizer"])  # loadable as it is
    momentum = [s["momentum_buffer"] for s in back["optimizer"]["state"].values()]
    assert len(momentum) == 6 and all(m.abs().sum() > 0 for m in momentum)
    assert logs == ["fine-tune: resumed after epoch 1, continuing at epoch 2"]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [STATE]  # no temporary left


def test_rng_states_restore_every_generator_also_through_the_file(tmp_path):
    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    _draws()  # mid-stream, not just after seeding; numpy holds a cached gaussian now
    store = EpochCheckpoints(tmp_path)
    store.save({"epoch": 2, "rng": rng_states()})
    expected = _draws()
    torch.manual_seed(99), random.seed(99), np.random.seed(99)
    assert _draws() != expected
    set_rng_states(store.load()["rng"])
    assert _draws() == expected


def test_saving_replaces_the_previous_epoch(tmp_path):
    store = EpochCheckpoints(tmp_path)
    for epoch in (1, 2, 3):
        store.save({"epoch": epoch, "w": torch.full((2,), float(epoch))})
    state = store.load()
    assert state["epoch"] == 3 and state["w"].tolist() == [3.0, 3.0]


def test_absent_or_unreadable_state_is_none(tmp_path):
    logs: list[str] = []
    store = EpochCheckpoints(tmp_path / "never", log=logs.append)
    assert store.load() is None and logs == []
    store.save({"epoch": 1, "w": torch.zeros(1000)})
    data = store.path.read_bytes()
    store.path.write_bytes(data[: len(data) // 2])  # truncated
    assert store.load() is None
    store.path.write_bytes(b"not a checkpoint")
    assert store.load() is None
    assert len(logs) == 2 and all("ignoring unreadable checkpoint" in m and str(store.path) in m for m in logs)


class _Code:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_a_state_that_would_unpickle_code_is_refused(tmp_path, capsys):
    store = EpochCheckpoints(tmp_path)
    tmp_path.joinpath(STATE).write_bytes(pickle.dumps({"epoch": 1, "x": _Code()}))
    assert store.load() is None
    assert "unpickled code ran" not in capsys.readouterr().out
    torch.save({"step": 3}, store.path)  # readable, but no epoch counter: not a training state
    assert store.load() is None


def test_only_plain_values_are_saved(tmp_path):
    store = EpochCheckpoints(tmp_path)
    with pytest.raises(TypeError, match=r"state\['rng'\]\['numpy'\] is a ndarray"):
        store.save({"epoch": 1, "rng": {"numpy": np.zeros(3)}})
    assert not store.path.exists()


def test_a_failed_write_keeps_the_previous_epoch(tmp_path, monkeypatch):
    store = EpochCheckpoints(tmp_path)
    store.save({"epoch": 1, "w": torch.ones(4)})

    def disk_full(obj, f):  # half the bytes land, then the disk is full
        f.write(b"\x80\x02partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.save({"epoch": 2, "w": torch.zeros(4)})
    monkeypatch.undo()
    assert store.load()["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [STATE]


def test_sub_stores_and_no_store_without_a_directory(tmp_path):
    assert EpochCheckpoints.at(None) is None
    store = EpochCheckpoints.at(tmp_path / "stage", label="compress")
    sub = store.sub("fit-1", label="lottery round 2")
    sub.save({"epoch": 1})
    assert (tmp_path / "stage" / "fit-1" / STATE).is_file() and sub.label == "lottery round 2"
    assert store.load() is None  # the stage's own state is not a fit call's
    store.clear()
    assert not (tmp_path / "stage").exists()


def test_each_stage_key_has_its_own_folder_and_done_stages_drop_theirs(tmp_path):
    a = resume_dir(tmp_path, "20-finetune", {"epochs": 3}, ["in"])
    b = resume_dir(tmp_path, "20-finetune", {"epochs": 4}, ["in"])
    c = resume_dir(tmp_path, "20-finetune", {"epochs": 3}, ["other input"])
    assert a.parent == tmp_path / RESUME / "20-finetune" and len(a.name) == 16
    assert len({a, b, c}) == 3
    e = resume_dir(tmp_path, "30-export/compressed-onnx", {}, [])
    for d in (a, b, e):
        EpochCheckpoints(d).save({"epoch": 1})
    drop_resume(tmp_path, "20-finetune")  # every key of the stage goes
    assert not (tmp_path / RESUME / "20-finetune").exists() and (e / STATE).is_file()
    drop_resume(tmp_path, "30-export/compressed-onnx")  # and the emptied parents
    assert not (tmp_path / RESUME).exists()
    drop_resume(tmp_path, "00-baseline")  # nothing there: nothing to do


def test_the_state_outlives_a_failed_stage_and_goes_with_a_done_one(tmp_path):
    where = resume_dir(tmp_path, "20-finetune", {"epochs": 4}, [])

    def dies(workdir: Path) -> dict:
        EpochCheckpoints(where).save({"epoch": 1})
        raise KeyboardInterrupt  # Ctrl-C after the first epoch

    with pytest.raises(KeyboardInterrupt):
        run_stage(tmp_path, "20-finetune", {"epochs": 4}, [], dies)
    assert EpochCheckpoints(where).load()["epoch"] == 1  # outside the removed temporary folder
    assert not list(tmp_path.glob(".20-finetune.tmp-*"))

    def finishes(workdir: Path) -> dict:
        return {"resumed_from": EpochCheckpoints(where).load()["epoch"]}

    assert run_stage(tmp_path, "20-finetune", {"epochs": 4}, [], finishes).outputs == {"resumed_from": 1}
    assert not (tmp_path / RESUME).exists()


# ---- resuming a training: needs train(resume=...) ----------------------------------------

@pytest.fixture(scope="module")
def data():
    return load_data("digits", input_size=8, num_classes=10, limit_train=256, limit_val=32)


class _KilledIn(EpochCheckpoints):
    """A real store whose process "dies" right after fit call ``call`` saved epoch ``epoch``."""

    def __init__(self, directory: Path, call: str, epoch: int):
        super().__init__(directory)
        self.call, self.epoch = call, epoch

    def sub(self, name: str, *, label=None) -> EpochCheckpoints:
        if name != self.call:
            return EpochCheckpoints(self.directory / name, label=label or self.label)
        return _Dying(self.directory / name, self.epoch)


class _Dying(EpochCheckpoints):
    def __init__(self, directory: Path, epoch: int):
        super().__init__(directory)
        self.epoch = epoch

    def save(self, state: dict) -> None:
        super().save(state)
        if state["epoch"] == self.epoch:
            raise KeyboardInterrupt  # after the file is in place, as a SIGKILL would find it


def _two_fits(trainer: LoopTrainer) -> tuple[nn.Module, list]:
    """A method that trains twice per stage (lottery rounds), with RNG-drawing work between."""
    model = _tiny()
    first = trainer.fit(model, schedule="finetune", epochs=2, description="round 1")
    with torch.no_grad():
        model[0].weight.mul_(torch.rand_like(model[0].weight) > 0.3)
    second = trainer.fit(model, schedule="finetune", epochs=3, description="round 2")
    return model, first + second


def _facts(history: list) -> list:
    return [(r["epoch"], r["train_loss"], r["val_accuracy"]) for r in history]  # not the timings


@pytest.mark.parametrize("call,epoch", [(0, 1), (1, 2)])
def test_a_stage_stopped_after_an_epoch_resumes_to_the_same_weights(tmp_path, data, call, epoch):
    schedules = {"finetune": TrainSpec(3, 0.05, batch_size=64, seed=1)}
    reference, ref_history = _two_fits(LoopTrainer(data, schedules, resume=EpochCheckpoints(tmp_path / "ref")))
    assert (tmp_path / "ref" / "fit-0" / STATE).is_file() and (tmp_path / "ref" / "fit-1" / STATE).is_file()

    store = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        _two_fits(LoopTrainer(data, schedules, resume=_KilledIn(store, f"fit-{call}", epoch)))
    torch.manual_seed(123)  # the rerun is another process: nothing carries over but the files
    logs: list[str] = []
    resumed, history = _two_fits(LoopTrainer(data, schedules, resume=EpochCheckpoints(store, log=logs.append)))
    assert f"round {call + 1}: resumed after epoch {epoch}, continuing at epoch {epoch + 1}" in logs
    for k, v in reference.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
    assert _facts(history) == _facts(ref_history)


def test_every_process_resumes_at_the_same_epoch_or_none_does(tmp_path):
    """Under torchrun each rank reads the store: a shared folder resumes every rank; folders
    that disagree (a run directory not shared between machines) resume none."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    EpochCheckpoints(tmp_path / "shared").save({"epoch": 2})
    EpochCheckpoints(tmp_path / "rank-1").save({"epoch": 3})  # rank 0 has none
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "tests/finetune/resume_worker.py", str(tmp_path), str(tmp_path / "out")],
                       capture_output=True, text=True, cwd=root, timeout=240,
                       env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    for rank in (0, 1):
        seen = torch.load(tmp_path / f"out.{rank}", weights_only=True)
        assert seen["shared"] == 2 and seen["own"] is None
        assert any("processes see different checkpoints" in m for m in seen["logs"])
    assert torch.load(tmp_path / "saved" / STATE, weights_only=True)["rank"] == 0  # only rank 0 wrote
