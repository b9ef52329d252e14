"""The README's "Deploying the released artifact" script, run as written (it is read from
README.md, so the two cannot drift) on a real release of a tiny plan over an image folder:
released once as ONNX (ONNX Runtime) and once as OpenVINO IR."""

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from edgeslim.data.imagefolder import read_image
from edgeslim.io import read_json
from edgeslim.report.plan_report import write_plan
from edgeslim.select.plan import plan_inputs, plan_recipe
from edgeslim.select.release import release
from edgeslim.targets.bench import open_artifact
from edgeslim.targets.runner import RUNNERS

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "## Deploying the released artifact"
COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}
# test_plan.py's quick settings; no weights: 3 epochs of 6 batches teach the baseline three colours
QUICK = ["data.batch_size=8", "data.calibration_samples=16", "baseline.epochs=3", "profile.max_seconds=0.2", "profile.sessions=1",
         "profile.min_iterations=5", "profile.warmup=2", "profile.warmup_seconds=0", "profile.accuracy=true"]


def deploy_script() -> str:
    """The first ```python block under the section's heading."""
    section = README.read_text(encoding="utf-8").split(HEADING, 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _picture(path: Path, colour: tuple[int, int, int], seed: int, size=(40, 30)) -> Path:
    """A coloured disc on a dark noisy background, not square (so the centre crop matters)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
    yy, xx = np.mgrid[:size[1], :size[0]]
    disc = (xx - size[0] / 2 + rng.integers(-4, 5)) ** 2 + (yy - size[1] / 2) ** 2 < 100
    pixels[disc] = colour
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    for name, colour in COLOURS.items():
        (root / "shapes" / name).mkdir(parents=True)
        for i in range(20):
            _picture(root / "shapes" / name / f"{i:02d}.png", colour, seed=100 * len(name) + i)
    out, dists = root / "plan", {}
    for fmt in ("onnx", "openvino"):  # the same plan folder: the second reuses every training stage
        recipe_file = root / f"{fmt}.yaml"
        recipe_file.write_text(yaml.safe_dump({
            "name": "colours", "model": {"name": "plain_cnn", "num_classes": 3},
            "data": {"name": f"imagefolder:{root / 'shapes'}"}, "export": {"formats": [fmt]}}))
        recipe, _ = plan_inputs(recipe_file, QUICK, targets=["cpu"], retrain="none")
        write_plan(plan_recipe(recipe, out))
        dists[fmt] = release(recipe, out, root / f"dist-{fmt}").manifests["cpu"].parent
    return root, dists


def _run_script(folder: Path, image: Path, monkeypatch) -> tuple[str, dict]:
    monkeypatch.setattr(sys, "argv", ["deploy.py", str(folder), str(image)])
    namespace: dict = {"__name__": "__main__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(deploy_script(), "README.md:deploy.py", "exec"), namespace)
    return printed.getvalue(), namespace


def test_the_readme_has_the_deploy_script():
    script = deploy_script()
    assert "manifest.json" in script and 'm["classes"]' in script and 'm["preprocessing"]' in script
    assert 12 <= len(script.strip().splitlines()) <= 25


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_the_readme_deploy_script_classifies_an_image_with_the_release(releases, fmt, tmp_path, monkeypatch):
    root, dists = releases
    folder = dists[fmt]
    manifest = read_json(folder / "manifest.json")
    assert manifest["format"] == fmt and manifest["classes"] == sorted(COLOURS)
    image = _picture(tmp_path / "new.png", COLOURS["green"], seed=7, size=(50, 36))
    printed, ns = _run_script(folder, image, monkeypatch)
    assert printed.splitlines() == [ns["m"]["classes"][int(ns["logits"].argmax())]]
    assert printed.strip() in manifest["classes"]
    # the script's input is exactly what edgeslim trained and measured on
    assert ns["x"].shape == (1, 3, 32, 32) and ns["x"].dtype == np.float32
    np.testing.assert_allclose(ns["x"][0], read_image(image, 32).numpy(), atol=1e-5)
    # and its logits are the artifact's own, as edgeslim's runner computed them when measuring
    # (an INT8 IR's float layers ran bf16 on a CPU listing BF16: the target's auto precision)
    opts = {"inference_precision": manifest["semantics"]["inference_precision"]} if fmt == "openvino" else {}
    with RUNNERS.get(fmt)(open_artifact(folder / manifest["artifact"]), **opts) as runner:
        reference = runner.infer(read_image(image, 32).numpy()[None])
    # bf16 float layers round at 8 bits: kernels chosen for another shape may differ by that
    bf16 = opts.get("inference_precision") == "bf16"
    np.testing.assert_allclose(ns["logits"], reference, atol=2e-2 * np.abs(reference).max() if bf16 else 1e-4)
    assert int(ns["logits"].argmax()) == int(reference.argmax())
    # the baseline learnt the colours (every validation image right), and names this one
    assert manifest["metrics"]["accuracy"] == 1.0 and printed == "green\n"
