"""Refuse noisy figures: the load check every benchmark that writes results/ goes through.

The committed ladder once showed eager resnet50 at 1,435 ms p50 measured at load average
8.3; on a quiet machine it is 170 ms. So a benchmark checks the machine before it starts
(other processes' CPU share over a short window, see edgeslim.targets.noise), and
refuses to overwrite a committed result with one measured on a busy machine, or whose rows
are marked ``noisy``, unless run with ``--allow-noisy``.

    from _noise import add_noise_args, check_quiet, write_result
    add_noise_args(ap); args = ap.parse_args()
    quiet = check_quiet(args)                      # exits with the reason when busy
    write_result(RESULTS / "x.md", text, args, rows=rows, quiet=quiet)

Every Markdown result written this way carries one ``Load check:`` line under its title:
the CPU (``cpu_info()``), the load average before the run and when writing, and other
processes' share of the cores at the start; a run forced through with ``--allow-noisy``
says so on that line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edgeslim.targets.base import cpu_info  # noqa: E402
from edgeslim.targets.noise import NoiseProbe  # noqa: E402

LOAD_CHECK = "Load check:"  # the Markdown line's prefix, so a re-render can find and keep it


def add_noise_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--allow-noisy", action="store_true",
                    help="measure and write results even when the machine is busy")
    ap.add_argument("--max-other-cpu", type=float, default=0.15,
                    help="other processes' share of the cores above which the machine is busy (0..1)")


def machine_noise(threshold: float, seconds: float = 2.0) -> dict[str, Any]:
    """Other processes' CPU share over ``seconds`` of this process sleeping."""
    probe = NoiseProbe(threshold)
    time.sleep(seconds)
    return probe.finish()


def check_quiet(args: argparse.Namespace, *, noise: dict[str, Any] | None = None,
                seconds: float = 2.0) -> dict[str, Any]:
    """The machine's noise now (or ``noise``, measured elsewhere); exits with the reason when
    busy and not ``--allow-noisy``.

    Example::

        quiet = check_quiet(args)   # {"noisy": False, "other_cpu_share": 0.02, ...}
    """
    if noise is None:
        noise = machine_noise(args.max_other_cpu, seconds)
    if noise["noisy"] and not args.allow_noisy:
        limit = noise.get("threshold", args.max_other_cpu)
        sys.exit(f"the machine is busy: other processes use {100 * noise['other_cpu_share']:.0f}% of the "
                 f"cores (limit {100 * limit:.0f}%), load average {noise.get('load_average_after')}; "
                 f"results measured now would not be the artifacts' (run again when quiet, or --allow-noisy)")
    return noise


def any_noisy(obj: Any) -> bool:
    """Whether any row inside ``obj`` (rows, nested dicts) carries ``noise.noisy``."""
    if isinstance(obj, dict):
        if isinstance(obj.get("noise"), dict) and obj["noise"].get("noisy"):
            return True
        return any(any_noisy(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(any_noisy(v) for v in obj)
    return False


def committed(path: Path) -> bool:
    """Whether git tracks ``path`` in the repository that holds it (not only this checkout)."""
    try:
        r = subprocess.run(["git", "ls-files", "--error-unmatch", path.name], cwd=path.parent,
                           capture_output=True, text=True)
    except FileNotFoundError:  # no git: nothing here is a committed result
        return False
    return r.returncode == 0


def _load() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):  # not on this platform
        return "unknown"


def load_check_line(quiet: dict[str, Any], allow_noisy: bool = False, *, name_cpu: bool = True) -> str:
    """The Markdown line naming the CPU (unless ``name_cpu`` is false: the result names it
    already) and the load before the run and now.

    Example::

        load_check_line(check_quiet(args))
        # 'Load check: Intel Xeon ... (4 cores); load average 0.31/0.40/0.52 before, ...'
    """
    info = cpu_info()
    before = quiet.get("load_average_before")
    before = "/".join(f"{x:.2f}" for x in before) if before else "unknown"
    cpu = f"{info['cpu']} ({os.cpu_count()} cores); " if name_cpu else ""
    line = (f"{LOAD_CHECK} {cpu}load average {before} before the run, "
            f"{_load()} after; other processes used {100 * quiet.get('other_cpu_share', 0.0):.0f}% of the "
            f"cores at the start (limit {100 * quiet.get('threshold', 0.0):.0f}%).")
    if quiet.get("noisy"):
        line += " **Noisy**: measured on a busy machine" + (" (--allow-noisy)." if allow_noisy else ".")
    return line


def _with_load_check(path: Path, text: str, quiet: dict[str, Any] | None, allow_noisy: bool) -> str:
    """``text`` with its load check line under the title: a fresh one for a measured run; for a
    re-render (no ``quiet``) the line the file already has, since the figures are the same."""
    if LOAD_CHECK in text:  # the script wrote its own
        return text
    if quiet is not None:
        line = load_check_line(quiet, allow_noisy, name_cpu=cpu_info()["cpu"] not in text)
    else:
        old = path.read_text(encoding="utf-8").split("\n") if path.is_file() else []
        line = next((x for x in old if x.startswith(LOAD_CHECK)), None)
        if line is None:
            return text
    lines = text.split("\n")
    if lines and lines[0].startswith("#"):
        return "\n".join(lines[:1] + ["", line] + lines[1:])
    return "\n".join([line, ""] + lines)


def write_result(path: Path, text: str, args: argparse.Namespace, *, rows: Any = None,
                 quiet: dict[str, Any] | None = None) -> bool:
    """Write ``text`` to ``path`` unless it would replace a committed result with a noisy one
    (without ``--allow-noisy``); then write ``path`` + ``.noisy`` instead and say so.

    A ``.md`` path gets the load check line under its title (see :func:`load_check_line`).
    Returns whether ``path`` itself was written.

    Example::

        write_result(RESULTS / "x.md", md, args, rows=rows, quiet=quiet)
    """
    allow = bool(getattr(args, "allow_noisy", False))
    noisy = any_noisy(rows) or bool(quiet and quiet.get("noisy"))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".md":
        text = _with_load_check(path, text, None if quiet is None else {**quiet, "noisy": noisy}, allow)
    if noisy and not allow and path.exists() and committed(path):
        alt = path.with_name(path.name + ".noisy")
        alt.write_text(text, encoding="utf-8")
        print(f"not overwriting committed {_shown(path)} with noisy figures; wrote {alt.name} "
              f"(use --allow-noisy to replace it)", file=sys.stderr)
        return False
    path.write_text(text, encoding="utf-8")
    return True


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:  # outside the checkout (--out elsewhere, tests)
        return str(path)
