"""The ``edgeslim`` command: parses, calls the library, renders. Nothing else.

Every :class:`~edgeslim.errors.EdgeslimError` ends as one line on stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from edgeslim.errors import EdgeslimError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compress a PyTorch vision model into smaller, faster ONNX/OpenVINO/TensorRT "
                       "artifacts and measure them on the target.")
out = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True)


class RichReporter:
    """Progress bars and log lines on a terminal; plain lines elsewhere (CI, ``nohup``, a pipe).

    Off a terminal, bars would be silence until the end, so every log line is printed as it
    comes (training logs one per epoch: loss, accuracy, img/s, ETA), and a finished task
    with a total that logged nothing itself (profiling) prints one line with its count and time.
    """

    def __init__(self, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True,
                                 disable=not self.live)
        self._lines = 0  # log lines printed so far

    @contextlib.contextmanager
    def task(self, description: str, total: Optional[int] = None) -> Iterator[Callable[[int], None]]:
        tid = self.progress.add_task(description, total=total)
        began, lines = time.perf_counter(), self._lines
        try:
            yield lambda n=1: self.progress.advance(tid, n)
            if not self.live and total is not None and self._lines == lines:
                done = int(next(t.completed for t in self.progress.tasks if t.id == tid))
                self.console.print(f"· {description}: {done}/{total} in {time.perf_counter() - began:.1f}s",
                                   highlight=False, markup=False)
        finally:
            self.progress.remove_task(tid)

    def log(self, message: str) -> None:
        self._lines += 1
        if self.live:
            self.console.print(f"[dim]· {escape(message)}[/]", highlight=False)
        else:
            self.console.print(f"· {message}", highlight=False, markup=False, soft_wrap=True)


# A bench figure stands alone (a run's profiles are compared inside one plan): time longer
# than a run's 0.5 s, which let a 20 ms model stop after ~25 iterations and vary by ±4%.
BENCH_SECONDS = 2.0


def _fail(e: EdgeslimError) -> None:
    # escaped: a message that quotes a user's value ([layer9.conv1]) must not be read as markup
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except EdgeslimError as e:
        _fail(e)
    except KeyboardInterrupt:
        err.print("interrupted; run the same command again to resume")
        raise typer.Exit(130)


SetOpt = typer.Option(None, "--set", help="override a recipe field: key.path=value (repeatable)")


@app.command()
def run(
    recipe: Optional[Path] = typer.Argument(None, help="recipe YAML (default: the embedded default)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/<name>)"),
    set_: Optional[List[str]] = SetOpt,
    wait: bool = typer.Option(False, "--wait", help="wait for another run holding the directory"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="training processes on this machine (torchrun, DDP)"),
) -> None:
    """Run one recipe: baseline → compress → fine-tune → export → quantize → profile."""
    from edgeslim.pipeline.run import run_recipe
    from edgeslim.recipe import load_recipe
    from edgeslim.report.table import rich_table

    with _user_errors():
        r = load_recipe(recipe, set_ or [])
        run_dir = out_dir or Path("runs") / r.name
        if nproc > 1 and "WORLD_SIZE" not in os.environ:
            from edgeslim.finetune.launch import launch_torchrun

            args = ([str(recipe)] if recipe else []) + ["--out", str(run_dir)]
            args += [a for kv in (set_ or []) for a in ("--set", kv)] + (["--wait"] if wait else [])
            raise typer.Exit(launch_torchrun(nproc, args, err))
        rep = RichReporter(err)
        with rep.progress:
            summary = run_recipe(r, run_dir, reporter=rep, wait=wait)
        if int(os.environ.get("RANK", 0)) != 0:
            return  # rank 0 reports
    out.print(rich_table(summary.rows, title=f"edgeslim · {r.name} · {run_dir}"))
    out.print(f"results: {run_dir / 'results.json'}  report: {run_dir / 'report.md'}  "
              f"({summary.seconds:.0f}s)", highlight=False)
    failed = [row for row in summary.rows if row["status"] == "failed"]
    if failed:
        raise typer.Exit(1)


@app.command("recipe")
def recipe_cmd(
    recipe: Optional[Path] = typer.Argument(None, help="recipe YAML to resolve (default: the default)"),
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """Print the resolved recipe as YAML you can copy and edit."""
    from edgeslim.recipe import dump_recipe, load_recipe

    with _user_errors():
        sys.stdout.write(dump_recipe(load_recipe(recipe, set_ or [])))


@app.command()
def models(pattern: str = typer.Argument("*", help="wildcard, e.g. 'resnet*'")) -> None:
    """List the model zoo."""
    from rich.table import Table

    from edgeslim.models import MODELS

    t = Table("name", "input", "family", "description")
    for name in MODELS.names(pattern):
        e = MODELS.get(name)
        t.add_row(name, str(e.input_size), e.family, e.description)
    out.print(t)


@app.command()
def methods() -> None:
    """List compression methods and distillation losses with the options they accept."""
    from rich.table import Table

    from edgeslim.compress import METHODS

    t = Table("name", "family", "description", "options")
    for name, m in METHODS.items():
        opts = ", ".join(f"{k}={f.default!r}" for k, f in (m.options.model_fields.items() if m.options else []))
        t.add_row(name, m.family, m.description, opts or "—")
    with contextlib.suppress(ImportError):
        from edgeslim.finetune.distill import LOSSES

        for name, loss in LOSSES.items():
            t.add_row(name, "distill loss", loss.description, loss.options_help())
    out.print(t)


@app.command()
def targets() -> None:
    """List targets, the formats each runs, and whether it is available here."""
    from rich.table import Table

    from edgeslim.exporters import EXPORTERS
    from edgeslim.targets import TARGETS, parse_target
    from edgeslim.recipe import TargetCfg

    t = Table("target", "formats", "available", "description")
    for name, cls in TARGETS.items():
        try:
            # ssh needs a URL; a placeholder one still says whether the ssh client is here
            tgt = parse_target(TargetCfg(name=name if name != "ssh" else "ssh://user@host"))
        except EdgeslimError:
            tgt = None
        ok, why = tgt.available() if tgt else (True, "given as ssh://user@host[:port]")
        t.add_row(name, ", ".join(tgt.formats if tgt else cls.formats), "yes" if ok else f"no: {why}",
                  cls.description)
    out.print(t)
    t = Table("format", "available", "description")
    for name, e in EXPORTERS.items():
        ok, why = e.available()
        t.add_row(name, "yes" if ok else f"no: {why}", e.description)
    out.print(t)


# Constraint shortcuts shared by plan and release (validated by edgeslim.select.constraints).
TargetOpt = typer.Option(None, "--target", help="target to plan for, replaces the recipe's (repeatable)")
LatencyOpt = typer.Option(None, "--latency-ms", help="latency budget: MS for every target, or TARGET=MS (repeatable)")
PercentileOpt = typer.Option(None, "--percentile", help="latency percentile the budget applies to: p50|p90|p99")
BytesOpt = typer.Option(None, "--max-bytes", help="size budget in bytes (every file of the artifact)")
DropOpt = typer.Option(None, "--max-accuracy-drop", help="accuracy drop allowed, in points vs the baseline")
RetrainOpt = typer.Option(None, "--retrain", help="retraining budget: none|short|full")


def _plan_inputs(recipe, set_, target, latency_ms, percentile, max_bytes, max_accuracy_drop, retrain, seeds=None):
    from edgeslim.select.plan import plan_inputs

    return plan_inputs(recipe, set_ or [], targets=target, latency_ms=latency_ms, percentile=percentile,
                       max_bytes=max_bytes, max_accuracy_drop=max_accuracy_drop, retrain=retrain, seeds=seeds)[0]


@app.command()
def plan(
    recipe: Optional[Path] = typer.Argument(None, help="recipe YAML (default: the embedded default on cpu and edge)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="plan directory (default runs/<name>-plan)"),
    set_: Optional[List[str]] = SetOpt, target: Optional[List[str]] = TargetOpt,
    latency_ms: Optional[List[str]] = LatencyOpt, percentile: Optional[str] = PercentileOpt,
    max_bytes: Optional[int] = BytesOpt, max_accuracy_drop: Optional[float] = DropOpt,
    retrain: Optional[str] = RetrainOpt,
    seeds: Optional[int] = typer.Option(None, "--seeds", help="runs of every candidate that trains, at fine-tune "
                                        "seeds s, s+1, ...: accuracy as mean ± sd, overlaps tie (default 1)"),
) -> None:
    """Propose candidates from the constraints, run and measure each, choose per target."""
    from edgeslim.report.plan_report import write_plan
    from edgeslim.report.plan_view import decision_lines, plan_table
    from edgeslim.select.plan import plan_recipe
    from edgeslim.select.prior import candidate_notes

    with _user_errors():
        r = _plan_inputs(recipe, set_, target, latency_ms, percentile, max_bytes, max_accuracy_drop, retrain, seeds)
        plan_dir = out_dir or Path("runs") / f"{r.name}-plan"
        rep = RichReporter(err)
        with rep.progress:
            result = plan_recipe(r, plan_dir, reporter=rep)
            write_plan(result)
    out.print(plan_table(result.rows, title=f"edgeslim plan · {r.name} · {plan_dir}"))
    for line in decision_lines(result.decisions):
        out.print(line)
    for note in candidate_notes(r, result.constraints):  # why the candidate set is narrow
        out.print(f"not proposed: {note}", highlight=False)
    if result.resolution is not None:
        out.print(result.resolution.text(), highlight=False)
    cached = ", every stage cached" if result.all_cached else ""
    out.print(f"results: {plan_dir / 'results.json'}  report: {plan_dir / 'report.html'}  "
              f"({result.seconds:.0f}s{cached})", highlight=False)
    if not result.feasible:
        raise typer.Exit(1)


@app.command()
def release(
    recipe: Optional[Path] = typer.Argument(None, help="recipe YAML the plan was made with (default: the default)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="plan directory (default runs/<name>-plan)"),
    dist: Path = typer.Option(Path("dist"), "--dist", help="release directory: DIST/<name>/<target>/"),
    run_plan: bool = typer.Option(False, "--run/--no-run", help="plan first when DIR has no plan for this recipe"),
    set_: Optional[List[str]] = SetOpt, target: Optional[List[str]] = TargetOpt,
    latency_ms: Optional[List[str]] = LatencyOpt, percentile: Optional[str] = PercentileOpt,
    max_bytes: Optional[int] = BytesOpt, max_accuracy_drop: Optional[float] = DropOpt,
    retrain: Optional[str] = RetrainOpt,
) -> None:
    """Release the chosen artifact of every target into DIST with a manifest; exit 1 when a gate fails."""
    from edgeslim.report.plan_report import write_plan
    from edgeslim.select.plan import plan_recipe
    from edgeslim.select.release import constraints_stated, release as do_release, stale_plan, with_plan_constraints

    with _user_errors():
        r = _plan_inputs(recipe, set_, target, latency_ms, percentile, max_bytes, max_accuracy_drop, retrain)
        plan_dir = out_dir or Path("runs") / f"{r.name}-plan"
        if not constraints_stated(set_, target, latency_ms, percentile, max_bytes, max_accuracy_drop, retrain):
            r = with_plan_constraints(r, plan_dir)  # the constraints and targets it was planned with
        rep = RichReporter(err)
        with rep.progress:
            if run_plan and stale_plan(plan_dir, r):  # --run: plan first (done stages are reused)
                write_plan(plan_recipe(r, plan_dir, reporter=rep))
            rel = do_release(r, plan_dir, dist)
    for t, row in rel.rows.items():
        out.print(f"★ {t}: {row['label']} → {rel.manifests[t].parent}  ({row['bytes']:,} bytes)", highlight=False)
    out.print(f"released into {rel.dist}", highlight=False)


@app.command()
def bench(
    paths: List[Path] = typer.Argument(..., help="artifacts: .onnx, OpenVINO .xml, TensorRT .engine/.plan"),
    target: Optional[List[str]] = typer.Option(None, "--target", help="cpu, edge, gpu or ssh://user@host (repeatable; default cpu)"),
    batch: Optional[str] = typer.Option(None, "--batch", help="batch sizes, e.g. 1,8 (p50 and throughput at each)"),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="NxCxHxW, e.g. 1x3x224x224 (needed for dynamic axes)"),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32|fp16|bf16|int8 (default: read from the model)"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="runtime threads on targets that take them"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the rows as JSON to FILE"),
    compare: bool = typer.Option(False, "--compare", help="interleaved rounds; p50 ratio to the first artifact with a 95% interval"),
    rounds: int = typer.Option(5, "--rounds", min=1, help="rounds of --compare"),
    sessions: int = typer.Option(5, "--sessions", min=1, help="fresh runtime sessions per artifact (without --compare; on cpu and edge each in a fresh process); the row is the median one"),
    accuracy: Optional[str] = typer.Option(None, "--accuracy", help="classifier accuracy on a recipe data source, e.g. digits"),
    preprocess: Optional[Path] = typer.Option(None, "--preprocess", help="also time decode+resize+normalize of this image"),
    noisy_share: Optional[float] = typer.Option(None, "--noisy-share", min=0, max=1, help="mark rows noisy above this share of other CPU load (default 0.25)"),
    seconds: float = typer.Option(BENCH_SECONDS, "--seconds", min=0.05, help="time each artifact at least this long (the median's CI may stop it sooner only after this)"),
) -> None:
    """Benchmark existing artifacts on targets, with the same profiler and rows as a run; exit 1 when a row failed."""
    from edgeslim.io import write_json
    from edgeslim.report.table import BENCH_COLUMNS, rich_table
    from edgeslim.targets.bench import bench as run_bench
    from edgeslim.targets.config import ProfileCfg

    with _user_errors():
        try:
            batches = [int(b) for b in batch.split(",")] if batch else None
        except ValueError:
            raise EdgeslimError(f"--batch must be integers like 1,8, got '{batch}'") from None
        prof = ProfileCfg(min_seconds=seconds, max_seconds=max(3 * seconds, ProfileCfg().max_seconds),
                          **({"noisy_share": noisy_share} if noisy_share is not None else {}))
        rows = run_bench(paths, targets=target or ["cpu"], batch_sizes=batches, input_shape=input_shape,
                         precision=precision, threads=threads, profile=prof, accuracy_data=accuracy,
                         preprocess_image=preprocess, compare=compare, rounds=rounds,
                         sessions=sessions)
        if json_out:
            write_json(json_out, rows)
    out.print(rich_table(rows, title="edgeslim bench", columns=BENCH_COLUMNS))
    if any(r["status"] == "failed" for r in rows):
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
