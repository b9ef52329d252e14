"""Run under torchrun by test_resume.py: what each rank's store loads, saved per rank.

``resume_worker.py DIR OUT``: rank r reads ``DIR/shared`` (one folder for every rank) and
``DIR/rank-r`` (its own: different epochs per rank, as on unshared machines), then saves.
"""

import sys
from pathlib import Path

import torch

from edgeslim.finetune import distributed
from edgeslim.finetune.resume import EpochCheckpoints


def main(folder: str, out: str) -> None:
    rank, _ = distributed.init_from_env()
    logs: list[str] = []
    shared = EpochCheckpoints(Path(folder) / "shared", log=logs.append).load()
    own = EpochCheckpoints(Path(folder) / f"rank-{rank}", log=logs.append).load()
    EpochCheckpoints(Path(folder) / "saved").save({"epoch": 5, "rank": rank})  # rank 0 writes
    torch.save({"shared": None if shared is None else shared["epoch"],
                "own": None if own is None else own["epoch"], "logs": logs}, f"{out}.{rank}")
    distributed.finish()


if __name__ == "__main__":
    main(*sys.argv[1:])
