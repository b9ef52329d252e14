"""``int8-qat``: quantization-aware training of a variant's model, then one artifact per format.

Two stages, so a run with several formats trains once per variant:

- :class:`QatTrainStage` (``35-qat/<variant>``) puts NNCF fake quantizers into the
  variant's model (``20-finetune`` or ``00-baseline``), trains through them with the
  training engine (placement, bf16, EMA, epoch checkpoints for resume, progress), and
  writes the Q/DQ ONNX every format is made from, checked against the trained model.
- :class:`QatStage` (``40-quantize/<variant>-<format>-int8-qat``) turns that ONNX into the
  format's artifact (ONNX: every activation Q/DQ re-expressed as uint8, the same values, so
  ONNX Runtime fuses every convolution; OpenVINO: IR with FakeQuantize and int8 weights) and
  checks it against that trained ONNX. Its distance from the FP32 parent is recorded, not
  enforced: training started there and moved the weights (far, from a parent that had not
  converged); accuracy judges the result, as for every variant.

Example::

    train = runner(QatTrainStage(), {"model": fine, "teacher": None}, folder="35-qat/compressed", variant=v)
    cell = runner(QatStage(), {"qat": train, "parent": exp}, folder=c.quantize_folder, cell=c)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import onnx
import torch

from edgeslim.artifacts import Artifact
from edgeslim.errors import QuantizeError
from edgeslim.exporters import EXPORTERS
from edgeslim.exporters.onnx_files import check_onnx, onnx_artifact_files, save_onnx
from edgeslim.exporters.openvino import onnx_to_ir
from edgeslim.finetune.config import DistillCfg
from edgeslim.finetune.device import Placement, resolve
from edgeslim.finetune.distill import build_distillation
from edgeslim.finetune.resume import EpochCheckpoints
from edgeslim.finetune.train import TrainSpec, evaluate, train
from edgeslim.io import write_json
from edgeslim.models.checkpoint import load_model
from edgeslim.models.loading import check_finite
from edgeslim.pipeline.context import Context
from edgeslim.pipeline.matrix import QAT, Cell, Variant
from edgeslim.pipeline.stage import StageResult
from edgeslim.pipeline.stages.base import DataSlice, Slice, Stage
from edgeslim.pipeline.stages.export import parity_inputs
from edgeslim.quantizers.base import drift_from, validate_against_parent
from edgeslim.quantizers.qat import (
    QatCfg,
    fold_batchnorm,
    int8_weight_count,
    library,
    prepare_qat,
    export_parity,
    qat_to_onnx,
    quantizer_count,
    unsigned_activations,
)
from edgeslim.recipe import Recipe

# the formats an int8-qat artifact is made for from the Q/DQ ONNX (TensorRT: not yet)
FORMATS = ("onnx", "openvino")
PARITY_IMAGES = 64  # calibration images the exported Q/DQ ONNX is checked on against the trained model


class QatTrainSlice(Slice):
    data: DataSlice
    batch_size: int
    calibration_samples: int
    qat: QatCfg
    lr: float  # qat.lr, or 0.01 x finetune.lr when unset
    optimizer: str  # finetune's optimizer, momentum and weight decay
    momentum: float
    weight_decay: float
    seed: int  # finetune.seed or the recipe's
    placement: Placement
    preset: str  # quantize.nncf_preset: symmetric or asymmetric activations
    opset: Optional[int] = None  # export.opset of the Q/DQ ONNX
    distill: Optional[DistillCfg] = None  # resolved (teacher: the baseline) when qat.distill


class QatTrainStage(Stage[QatTrainSlice]):
    folder = "35-qat"
    upstream = ("00-baseline", "20-finetune")  # the variant's model; the baseline as teacher

    def slice(self, recipe: Recipe, *, variant: Variant, **where: Any) -> QatTrainSlice:
        q, ft = recipe.quantize.qat, recipe.finetune
        distill = (ft.distill or DistillCfg()).model_copy(update={"teacher": "baseline"}) if q.distill else None
        return QatTrainSlice(data=DataSlice.of(recipe), batch_size=recipe.data.batch_size,
                             calibration_samples=recipe.data.calibration_samples, qat=q,
                             lr=q.lr if q.lr is not None else ft.lr / 100, optimizer=ft.optimizer,
                             momentum=ft.momentum, weight_decay=ft.weight_decay, seed=ft.seed_or(recipe.seed),
                             placement=resolve(recipe.train), preset=recipe.quantize.nncf_preset,
                             opset=recipe.export.opset, distill=distill)

    @staticmethod
    def needs_teacher(cfg: QatTrainSlice) -> bool:
        return cfg.distill is not None

    def run(self, workdir: Path, inputs: dict[str, Optional[StageResult]], cfg: QatTrainSlice,
            ctx: Context) -> dict[str, Any]:
        data = cfg.data.load(ctx)
        if not data.labelled and cfg.distill is None:
            raise QuantizeError(f"int8-qat trains on labels and data '{cfg.data.name}' has none; "
                                "set quantize.qat.distill: true to learn from the baseline's outputs")
        torch.manual_seed(cfg.seed)
        model = load_model(inputs["model"].dir)
        folded = fold_batchnorm(model)
        calib = data.calibration(cfg.calibration_samples, seed=cfg.data.seed)
        with ctx.reporter.task("int8-qat: insert fake quantizers"):
            model = prepare_qat(model, calib, preset=cfg.preset,
                                per_channel_activations=cfg.qat.activations == "per_channel")
        val = cfg.data.val_loader(data, cfg.batch_size)
        before = evaluate(model, val)
        loss_fn, extra = None, []
        if cfg.distill is not None:
            loss_fn, extra = build_distillation(cfg.distill, student=model, baseline_dir=inputs["teacher"].dir,
                                                example=cfg.data.example_input(2))
        spec = TrainSpec(cfg.qat.epochs, cfg.lr, cfg.optimizer, cfg.momentum, cfg.weight_decay,
                         cfg.batch_size, cfg.seed)
        try:
            history = train(model, data, spec, placement=cfg.placement, reporter=ctx.reporter, loss_fn=loss_fn,
                            extra_params=extra, description="int8-qat",
                            resume=EpochCheckpoints.at(ctx.resume_dir, log=ctx.log, label="int8-qat"))
        finally:
            if loss_fn is not None:
                loss_fn.close()
        check_finite(model, "quantization-aware trained model")
        acc = evaluate(model, val)
        qat_to_onnx(model, calib, workdir / "model.onnx", cfg.opset)
        exported = export_parity(model, workdir / "model.onnx", calib[:PARITY_IMAGES])
        write_json(workdir / "history.json", history)
        return {"onnx": "model.onnx", "accuracy": acc, "accuracy_before_training": before, "export_parity": exported,
                "epochs": len(history), "lr": cfg.lr, "bn_folded": folded, "quantizers": quantizer_count(model),
                "int8_weights": int8_weight_count(workdir / "model.onnx"), "library": library(),
                "distill": cfg.distill.method if cfg.distill else None}


class QatSlice(Slice):
    data: DataSlice  # parity inputs
    format: str
    parity_samples: int
    unavailable: str = ""  # why this format has no int8-qat artifact here ("" when it has)
    # the ONNX artifact's activation Q/DQ type (unsigned_activations; "" for other formats): in
    # the ONNX cells' key, so run directories made before it (mixed int8/uint8, convolutions
    # in float) redo those cells; the other formats' keys are as before
    onnx_activations: str = ""

    def key(self) -> dict[str, Any]:
        k = super().key()
        if not self.onnx_activations:
            k.pop("onnx_activations")
        return k


class QatStage(Stage[QatSlice]):
    folder = "40-quantize"
    upstream = ("35-qat", "30-export")  # the trained Q/DQ ONNX; the FP32 parent it is checked against

    def slice(self, recipe: Recipe, *, cell: Cell, **where: Any) -> QatSlice:
        ok, why = EXPORTERS.get(cell.format).available()
        if ok and cell.format not in FORMATS:
            ok, why = False, (f"int8-qat makes {', '.join(FORMATS)} artifacts; for {cell.format} build "
                              f"the trained Q/DQ ONNX (35-qat/{cell.variant.name}/model.onnx, signed as trained) strongly typed")
        return QatSlice(data=DataSlice.of(recipe), format=cell.format, parity_samples=recipe.export.parity.samples,
                        unavailable="" if ok else why or "unavailable",
                        onnx_activations="uint8" if cell.format == "onnx" else "")

    def run(self, workdir: Path, inputs: dict[str, StageResult], cfg: QatSlice, ctx: Context) -> dict[str, Any]:
        if cfg.unavailable:
            return {"skipped": cfg.unavailable}
        trained, exp = inputs["qat"], inputs["parent"]
        parent = Artifact.from_json(exp.outputs["artifact"], exp.dir)
        qdq = trained.dir / trained.outputs["onnx"]
        as_trained = Artifact(qdq, "onnx", QAT, parent.variant, parent.method)
        with ctx.reporter.task(f"int8-qat {parent.variant} → {cfg.format}"):
            facts = {k: trained.outputs[k] for k in ("epochs", "lr", "library", "bn_folded", "distill")}
            if cfg.format == "onnx":  # every activation uint8: ONNX Runtime's fused INT8 kernels
                proto = onnx.load(str(qdq))
                if cfg.onnx_activations == "uint8":
                    facts["activations_made_unsigned"] = unsigned_activations(proto)
                path = workdir / "model.onnx"
                save_onnx(proto, path)
                check_onnx(path)
                files = onnx_artifact_files(path)
            else:
                path = workdir / "model.xml"
                files = onnx_to_ir(qdq, path)
            art = Artifact(path, cfg.format, QAT, parent.variant, parent.method, files=files, parent=parent.id)
            art.info = {"quantizer": "quantization-aware training", "weights": "int8",
                        "qat_torch_accuracy": trained.outputs["accuracy"], **facts}
            x = parity_inputs(cfg.data.load(ctx), cfg.parity_samples)
            # held to the trained Q/DQ ONNX it was made from; its FP32 parent is where training
            # started, so the distance from it is recorded (accuracy judges it), not enforced
            art.info["parity"] = validate_against_parent(art, as_trained, x,
                                                         reference=f"trained Q/DQ ONNX (35-qat/{parent.variant})")
            art.info["vs_fp32_parent"] = drift_from(art, parent, x)
        write_json(workdir / "parity.json", art.info["parity"])
        return {"artifact": art.to_json(workdir)}
