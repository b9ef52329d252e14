"""``edgeslim run --nproc N``: re-execute the same command under torchrun on this machine.

Multi-machine runs call torchrun directly with its rendezvous arguments (see the README).
When a rank dies, torchrun stops the others and reports which rank failed; we pass its
output through and end with one line naming the rank and its exit code.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys


def failed_rank(text: str) -> tuple[str, str] | None:
    """(rank, exitcode) of the root cause in torchrun's failure summary, if present."""
    text = text.split("Root Cause", 1)[-1]
    m = re.search(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", text, re.S)
    return (m.group(1), m.group(2)) if m else None


def launch_torchrun(nproc: int, args: list[str], console) -> int:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "edgeslim", "run", *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, bufsize=1)
    tail: list[str] = []
    failing = False
    assert proc.stderr is not None
    for line in proc.stderr:
        tail = (tail + [line])[-200:]
        # torchrun's own chatter (warnings, tracebacks of ranks torn down after a failure,
        # the failure banner) is summarized in one line below instead
        failing = failing or line.startswith(("Traceback", "[rank", "torch.distributed.elastic", "==="))
        if line.startswith("error:") or not (failing or re.match(r"^(W|E|I)\d{4} |^\*+$|^\[W", line)):
            sys.stderr.write(line)
    code = proc.wait()
    if code == 0:
        return 0
    text = "".join(tail)
    user_error = [l for l in tail if l.startswith("error:")]
    if user_error:  # a rank reported an EdgeslimError: it has been printed already
        return 2
    found = failed_rank(text)
    if found:
        rank, exitcode = found
        why = f"exit code {exitcode}"
        if exitcode.startswith("-"):
            try:
                why = f"killed by {signal.Signals(-int(exitcode)).name}"
            except ValueError:
                pass
        console.print(f"[bold red]error:[/] training rank {rank} died ({why}); the stage it was in "
                      f"was not marked done — run the same command again to resume", highlight=False)
    else:
        console.print(f"[bold red]error:[/] torchrun failed with exit code {code}", highlight=False)
    return 1
