"""``int8-qat`` in the pipeline: the QAT stages' keys, a tiny run that lists int8-qat rows
for ONNX Runtime and OpenVINO, and resume inside the training."""

from __future__ import annotations


import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeslim.errors import QuantizeError
from edgeslim.finetune.resume import EpochCheckpoints
from edgeslim.io import sha256_file, sha256_json
from edgeslim.pipeline.context import Context, NullReporter
from edgeslim.pipeline.matrix import Cell, Variant, variants
from edgeslim.pipeline.run import run_recipe
from edgeslim.pipeline.stages import QatStage, QatTrainStage, QuantizeStage
from edgeslim.recipe import load_recipe

TINY = ["model.input_size=16", "data.limit_train=96", "data.limit_val=32", "data.batch_size=32",
        "data.calibration_samples=16", "baseline.epochs=1", "finetune.epochs=1", "control.enabled=false",
        "export.include_baseline=false", "export.formats=[onnx,openvino]", "export.parity.samples=16",
        "quantize.precisions=[fp32,int8,int8-qat]", "quantize.qat.epochs=1", "train.precision=fp32",
        "profile.max_seconds=0.1", "profile.sessions=1", "profile.min_iterations=3", "profile.warmup=1", "profile.warmup_seconds=0"]
COMPRESSED = Variant("compressed", "l1", "20-finetune")


def _train_key(*extra: str) -> str:
    r = load_recipe(None, TINY + list(extra))
    return sha256_json(QatTrainStage().slice(r, variant=COMPRESSED).key())


def _cell_key(stage, precision: str, *extra: str) -> str:
    r = load_recipe(None, TINY + list(extra))
    return sha256_json(stage.slice(r, cell=Cell(COMPRESSED, "onnx", precision)).key())


@pytest.mark.parametrize("changed", ["quantize.qat.epochs=3", "quantize.qat.lr=0.001", "quantize.qat.distill=true",
                                     "finetune.lr=0.2", "data.calibration_samples=8", "quantize.nncf_preset=mixed",
                                     "train.ema=0.99", "finetune.seed=7", "export.opset=18"])
def test_what_qat_training_reads_changes_its_key(changed):
    assert _train_key(changed) != _train_key()


@pytest.mark.parametrize("unrelated", ["finetune.epochs=3", "quantize.per_channel=false", "profile.warmup=3",
                                       "export.parity.samples=8", "constraints.max_bytes=1000",
                                       "quantize.precisions=[int8-qat]", "quantize.tolerance_points=1"])
def test_what_qat_training_does_not_read_leaves_its_key(unrelated):
    assert _train_key(unrelated) == _train_key()


def test_an_explicit_qat_lr_frees_the_key_from_the_finetune_lr():
    assert _train_key("quantize.qat.lr=0.001", "finetune.lr=0.2") == _train_key("quantize.qat.lr=0.001")
    assert QatTrainStage().slice(load_recipe(None, TINY), variant=COMPRESSED).lr == pytest.approx(0.0005)


def test_qat_settings_stay_out_of_the_ptq_and_format_keys():
    assert _cell_key(QuantizeStage(), "int8", "quantize.qat.epochs=5") == _cell_key(QuantizeStage(), "int8")
    assert _cell_key(QatStage(), "int8-qat", "quantize.qat.epochs=5") == _cell_key(QatStage(), "int8-qat")
    assert _cell_key(QatStage(), "int8-qat", "export.parity.samples=8") != _cell_key(QatStage(), "int8-qat")


def test_distillation_uses_the_finetune_loss_and_the_baseline_as_teacher():
    r = load_recipe(None, TINY + ["quantize.qat.distill=true",
                                  "finetune.distill={method: hinton, temperature: 2.0, teacher: /nonexistent.pt}"])
    cfg = QatTrainStage().slice(r, variant=COMPRESSED)
    assert QatTrainStage.needs_teacher(cfg)
    assert (cfg.distill.method, cfg.distill.temperature, cfg.distill.teacher) == ("hinton", 2.0, "baseline")
    plain = QatTrainStage().slice(load_recipe(None, TINY), variant=COMPRESSED)
    assert plain.distill is None and not QatTrainStage.needs_teacher(plain)


def test_a_format_without_int8_qat_says_why():
    r = load_recipe(None, TINY)
    why = QatStage().slice(r, cell=Cell(variants(r)[0], "tensorrt", "int8-qat")).unavailable
    assert why  # TensorRT not installed here, or: build the Q/DQ ONNX strongly typed
    assert QatStage().slice(r, cell=Cell(variants(r)[0], "onnx", "int8-qat")).unavailable == ""


# ---- a tiny run ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qat-run")
    first = run_recipe(load_recipe(None, TINY), out)
    again = run_recipe(load_recipe(None, TINY + ["quantize.qat.epochs=2"]), out)
    return out, first, again


def test_the_run_lists_int8_qat_rows_checked_against_the_trained_qdq_onnx(run):
    out, first, _ = run
    rows = {r["id"]: r for r in first.rows}
    for fmt in ("onnx", "openvino"):
        r = rows[f"compressed/{fmt}/int8-qat"]
        assert r["status"] == "ok", r
        assert r["parity"]["passed"] and r["parity"]["min_cosine"] == 0.95
        assert r["parity"]["cosine"] > 0.99  # the same trained graph, in another runtime or form
        assert 0.0 < r["info"]["vs_fp32_parent"]["cosine"] <= 1.0  # recorded: where training started
        assert 0.0 <= r["accuracy"] <= 1.0
        # int8 weights: the weights file is a fraction of the FP32 parent's (an IR's .xml,
        # the graph, is as large as before)
        weights = lambda row: sum((out / f).stat().st_size for f in row["files"] if not f.endswith(".xml"))  # noqa: E731
        assert weights(r) < 0.5 * weights(rows[f"compressed/{fmt}/fp32"]), fmt
    assert "| int8-qat |" in (out / "report.md").read_text()
    trained = next(s for s in first.stages if s.name == "35-qat/compressed").outputs
    assert trained["bn_folded"] == 21 and trained["int8_weights"] == 22 and trained["epochs"] == 1
    assert trained["export_parity"]["passed"] and trained["export_parity"]["cosine"] > 0.99  # ONNX vs torch


def test_qat_that_trains_far_from_its_parent_is_judged_by_accuracy_not_parity(tmp_path):
    """QAT is training: from a parent that is far from converged its weights move, and its
    outputs with them. That is not a broken artifact: the run records the distance and goes on."""
    result = run_recipe(load_recipe(None, TINY + ["quantize.qat.lr=0.5", "export.formats=[onnx]",
                                                   "quantize.precisions=[fp32,int8-qat]"]), tmp_path / "run")
    row = next(r for r in result.rows if r["id"] == "compressed/onnx/int8-qat")
    assert row["status"] == "ok" and row["parity"]["passed"]
    drift = row["info"]["vs_fp32_parent"]
    assert not drift["passed"] and drift["cosine"] < 0.95  # the premise: it did move that far


def test_the_onnx_artifact_is_qdq_with_int8_weights_that_onnx_runtime_loads(run):
    out, first, _ = run
    row = next(r for r in first.rows if r["id"] == "compressed/onnx/int8-qat")
    path = out / row["artifact"]
    g = onnx.load(str(path)).graph
    ops = {n.op_type for n in g.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert sum(t.data_type == onnx.TensorProto.INT8 for t in g.initializer) == 22
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.zeros((3, 3, 16, 16), np.float32)
    assert sess.run(None, {"input": x})[0].shape == (3, 10)


def test_the_openvino_artifact_has_fake_quantize_and_int8_weights(run):
    import openvino as ov

    out, first, _ = run
    row = next(r for r in first.rows if r["id"] == "compressed/openvino/int8-qat")
    model = ov.Core().read_model(str(out / row["artifact"]))
    ops = [op.get_type_name() for op in model.get_ops()]
    assert ops.count("FakeQuantize") > 0
    i8 = [op for op in model.get_ops() if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8]
    assert len(i8) == 22


def test_changing_qat_epochs_retrains_only_the_qat_stages(run):
    _, _, again = run
    redone = sorted(s.name for s in again.stages if not s.cached)
    assert redone == ["35-qat/compressed", "40-quantize/compressed-onnx-int8-qat",
                      "40-quantize/compressed-openvino-int8-qat", "50-profile"], redone
    trained = next(s for s in again.stages if s.name == "35-qat/compressed")
    assert trained.outputs["epochs"] == 2


# ---- resume inside the training (slow: three trainings) ---------------------------------------

class _DiesAfterFirstEpoch(EpochCheckpoints):
    def save(self, state: dict) -> None:
        super().save(state)
        if state["epoch"] == 1:
            raise KeyboardInterrupt  # after the state is on disk, as a SIGKILL would find it


@pytest.mark.slow
def test_killed_qat_resumes_at_the_next_epoch_to_the_same_artifact(tmp_path, monkeypatch):
    recipe = load_recipe(None, TINY + ["quantize.qat.epochs=2", "export.formats=[onnx]"])
    ref = run_recipe(recipe, tmp_path / "ref")
    out = tmp_path / "killed"
    with monkeypatch.context() as m:
        m.setattr("edgeslim.pipeline.stages.qat.EpochCheckpoints", _DiesAfterFirstEpoch)
        with pytest.raises(KeyboardInterrupt):
            run_recipe(recipe, out)
    assert not (out / "35-qat" / "compressed" / "done.json").exists()
    logs: list[str] = []

    class Heard(NullReporter):
        def log(self, message: str) -> None:
            logs.append(message)

    resumed = run_recipe(recipe, out, reporter=Heard())
    assert "int8-qat: resumed after epoch 1, continuing at epoch 2" in logs
    onnx_of = lambda s, d: d / next(r for r in s.rows if r["id"] == "compressed/onnx/int8-qat")["artifact"]  # noqa: E731
    assert sha256_file(onnx_of(resumed, out)) == sha256_file(onnx_of(ref, tmp_path / "ref"))


def test_qat_without_labels_or_a_teacher_is_one_clear_error(tmp_path):
    stage = QatTrainStage()
    cfg = stage.slice(load_recipe(None, TINY + ["data.name=synthetic"]), variant=COMPRESSED)
    with pytest.raises(QuantizeError) as err:  # before any model is loaded or trained
        stage.run(tmp_path, {"model": None, "teacher": None}, cfg, Context(run_dir=tmp_path))
    assert "quantize.qat.distill" in str(err.value) and "synthetic" in str(err.value)
    assert "\n" not in str(err.value)
