"""Run one stage with caching: the ``done.json`` contract of the run directory.

A stage's key is a hash of its config slice and of its inputs' content hashes. When the
stage folder holds a ``done.json`` with the same key, the stage is skipped and its
recorded outputs are returned. Otherwise the stage runs in a temporary sibling folder;
only when it returns is ``done.json`` written there and the folder renamed into place,
so a killed run never leaves a stage that looks finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from edgeslim.errors import EdgeslimError, RunDirError
from edgeslim.finetune import distributed
from edgeslim.io import read_json, sha256_file, sha256_json, write_json

DONE = "done.json"
# Per-epoch training state of stages in progress (edgeslim.finetune.resume): outside the
# stage's temporary folder, which a rerun deletes; removed once the stage is done.
RESUME = ".resume"


@dataclass
class StageResult:
    name: str
    dir: Path
    key: str
    outputs: dict[str, Any]  # what the stage returned (JSON-able; paths relative to dir)
    hash: str  # content hash of the stage's files: the input hash of the next stages
    cached: bool
    seconds: float

    def path(self, rel: str) -> Path:
        return self.dir / rel


def _content_hash(folder: Path) -> tuple[str, dict[str, str]]:
    """The hash of every file under ``folder`` but ``done.json``, and each file's sha256."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != DONE:
            files[p.relative_to(folder).as_posix()] = sha256_file(p)
    return sha256_json(files), files


_STORAGE = ("No space left", "File too large", "Read-only file system", "Permission denied",
            "Disk quota exceeded", "Input/output error")
_STORAGE_ERRNOS = {28, 27, 30, 13, 122, 5}  # ENOSPC EFBIG EROFS EACCES EDQUOT EIO


def storage_failure(err: BaseException) -> str | None:
    """The storage problem behind ``err`` (a full disk, a read-only folder), if any.

    Writers wrap OS errors in their own types (safetensors, onnx, torch.onnx), so look
    through the exception chain and the messages, not only for OSError.
    """
    seen = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _STORAGE_ERRNOS:
            return e.strerror or str(e)
        if isinstance(e, EdgeslimError):  # already one clear line about something else
            return None
        text = str(e)
        for needle in _STORAGE:
            if needle in text:
                return needle
        e = e.__cause__ or e.__context__
    return None


def folder_hash(folder: Path) -> str:
    """The content hash of a folder's files (``done.json`` aside): a stage's output hash,
    or the key part of a saved model folder that a slice names by path."""
    return _content_hash(folder)[0]


def stage_key(name: str, config: Any, inputs: list[str]) -> str:
    return sha256_json({"stage": name.split("/")[0], "config": config, "inputs": inputs})


def resume_dir(run_dir: Path, name: str, config: Any, inputs: list[str]) -> Path:
    """Where stage ``name`` keeps its training state between runs: one folder per key, so
    a changed slice or changed inputs never resume from another training's state."""
    return run_dir / RESUME / name / stage_key(name, config, inputs)[:16]


def drop_resume(run_dir: Path, name: str) -> None:
    """Forget the training state of stage ``name`` (every key): it is done."""
    folder = run_dir / RESUME / name
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    for parent in folder.parents:  # empty .resume/30-export/ and .resume/ go too
        if parent == run_dir or not parent.is_relative_to(run_dir / RESUME):
            break
        try:
            parent.rmdir()
        except OSError:  # not empty: another stage's state
            break


def is_done(folder: Path, key: str) -> bool:
    done = folder / DONE
    if not done.is_file():
        return False
    try:
        return read_json(done).get("key") == key
    except (OSError, ValueError):
        return False


def run_stage(
    run_dir: Path,
    name: str,
    config: Any,
    inputs: list[str],
    fn: Callable[[Path], dict[str, Any]],
    *,
    share_from: Sequence[Path] = (),
) -> StageResult:
    """Run ``fn(workdir) -> outputs`` as stage ``name`` unless it is already done.

    ``share_from``: other run directories (a plan's earlier candidates). When one holds
    this stage done under the same key — equal slice, equal inputs — its folder is
    hard-linked here instead of computed again.

    Under torchrun every rank calls this for the training stages: all ranks run ``fn``
    (DDP needs each of them), only rank 0 keeps its files and writes ``done.json``, and
    the other ranks then read rank 0's result.
    """
    rank, _ = distributed.world()
    folder = run_dir / name
    key = stage_key(name, config, inputs)
    distributed.barrier()  # every rank sees the same done.json
    if rank == 0 and not is_done(folder, key):
        _share(folder, name, key, share_from)
    distributed.barrier()
    if is_done(folder, key):
        if rank == 0:  # killed after done.json was renamed into place, before this went
            drop_resume(run_dir, name)
        distributed.barrier()  # nobody may start rewriting it while another still reads it
        return _recorded(name, folder, key, cached=True)
    if rank != 0:
        with tempfile.TemporaryDirectory(prefix=f"edgeslim-rank{rank}-") as scratch:
            fn(Path(scratch))  # same computation, files discarded
        distributed.barrier()  # rank 0 has written done.json
        return _recorded(name, folder, key, cached=False)
    result = _build(folder, name, key, fn)
    drop_resume(run_dir, name)  # kept when fn failed: a rerun resumes at its last epoch
    distributed.barrier()
    return result


def _recorded(name: str, folder: Path, key: str, *, cached: bool) -> StageResult:
    done = read_json(folder / DONE)
    return StageResult(name, folder, key, done["outputs"], done["hash"], cached, done.get("seconds", 0.0))


def _share(folder: Path, name: str, key: str, share_from: Sequence[Path]) -> None:
    """Link the first done folder of this stage with the same key from another run."""
    for other in share_from:
        if is_done(other / name, key):
            if folder.exists():
                shutil.rmtree(folder)
            link_tree(other / name, folder)
            return


def _build(folder: Path, name: str, key: str, fn: Callable[[Path], dict[str, Any]]) -> StageResult:
    """Run ``fn`` in a temporary sibling folder; rename it into place only once done."""
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
    except OSError as err:
        raise RunDirError(f"cannot create stage folder {tmp}: {err.strerror or err}") from None
    t0 = time.perf_counter()
    try:
        outputs = fn(tmp)
        seconds = time.perf_counter() - t0
        digest, files = _content_hash(tmp)
        write_json(tmp / DONE, {"stage": name, "key": key, "hash": digest, "files": files,
                                "outputs": outputs, "seconds": round(seconds, 3),
                                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        why = storage_failure(err)
        if why:
            raise RunDirError(f"stage {name}: cannot write to {folder.parent}: {why}") from None
        raise
    return StageResult(name, folder, key, outputs, digest, False, seconds)


def link_tree(src: Path, dst: Path) -> None:
    """Copy a done stage folder by hard links (files are never modified in place: stages
    replace whole folders), atomically: a temporary name renamed into place."""
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:  # another filesystem, or links not allowed
            shutil.copy2(s, d)

    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, tmp, copy_function=link)
    tmp.rename(dst)


def clean_stale_temporaries(run_dir: Path) -> None:
    """Remove temporary stage folders left by a killed run."""
    if not run_dir.exists():
        return
    for p in run_dir.rglob(".*.tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
