"""Training loop for both phases of the paper's schedule (§4.2):

- ``pretrain``: visual encoder + joint regressor, L1 on the lixel soft-argmax uvd joints (eq. 4) plus the
  lixel distribution loss (:func:`cliphand.train.losses.lixel_loss`), one augmented view (amplitude-spectrum mix,
  photometric jitter, random in-plane rotation, scale and shift).
- ``finetune``: the full model end to end from the pretrained weights with the total loss (§3.5)
  ``alpha1 * (L_joint + L_vert) + alpha2 * (L_normal + L_edge) + alpha3 * L_consistency + alpha4 * L_clip``
  (eqs. 4-7) over two views per image (see :mod:`cliphand.data.augment`; the CLIP loss sees view a,
  whose pose matches the cached prompts).

AdamW with a per-step schedule (:func:`make_optimizer`: warm-up then cosine decay by default; the paper's
step decay ``x lr_decay`` every ``decay_every`` of the run's epochs as an option). A checkpoint is written
after every epoch (temp file, then rename) and training resumes from it after an interruption.

Started by ``torchrun`` (see :mod:`cliphand.distributed`), :func:`train` runs data-parallel: every process
takes its share of each global batch and DistributedDataParallel averages the gradients; the CLIP loss
gathers the embeddings of the whole global batch.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from cliphand import distributed
from cliphand.train import losses as L
from cliphand.train.settings import TrainRun
from cliphand.io import fingerprint
from cliphand.data.augment import apply_affine_uvd, geometric_view, normalise, style
from cliphand.data.loader import PreparedSet
from cliphand.distributed import model_device, resolve_device
from cliphand.evaluate.inference import validation_metrics
from cliphand.errors import TrainingError
from cliphand.hand.geometry import uvd_to_xyz
from cliphand.io import atomic_path

LogFn = Callable[[dict, int], None]


def _autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when ``enabled`` (``<phase>.amp``); a no-op context otherwise."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=bool(enabled) and device.type == "cuda")


def _float_outputs(out: dict) -> dict:
    return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}


#: the modules a finetune starts from pretrained weights (pretrain phase): visual encoder and joint regressor
PRETRAINED_MODULES = ("backbone.", "joint_regressor.")


def make_optimizer(model: torch.nn.Module, run: TrainRun, steps_per_epoch: int):
    """AdamW (``run.lr``, ``run.weight_decay``) and a per-step learning-rate schedule.

    ``run.pretrained_lr_mult`` scales the learning rate of the modules that a finetune takes
    from pretraining (:data:`PRETRAINED_MODULES`); the new heads (mesh regressor, CLIP head) learn at ``lr``.
    Fine-tuning the pretrained encoder and joint regressor at the new heads' rate undoes part of the
    pretraining (measured: real-dev PA-MPJPE 16.4 -> 17.7 mm over one finetune epoch at 1e-3).

    ``run.schedule``:
    - ``cosine``: linear warm-up from 0 over ``warmup_steps`` steps (at most a fifth of the run), then
      cosine decay to 0 at the last step (Loshchilov & Hutter, SGDR, 2017; as in open_clip and nanoGPT);
    - ``step`` (the paper, §4.2): x ``lr_decay`` every ``round(decay_every * epochs)`` epochs (paper: 1e-3,
      x0.25 every 50 of 200 epochs), after the same warm-up.

    Returns:
        (optimizer, LambdaLR scheduler stepped after every optimizer step).
    """
    lr, mult = run.lr, run.pretrained_lr_mult
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    pre = [p for n, p in named if n.startswith(PRETRAINED_MODULES)]
    new = [p for n, p in named if not n.startswith(PRETRAINED_MODULES)]
    groups = [g for g in ({"params": pre, "lr": lr * mult}, {"params": new, "lr": lr}) if g["params"]]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=run.weight_decay)
    epochs, schedule = run.epochs, run.schedule
    total = max(1, epochs * steps_per_epoch)
    warmup = min(run.warmup_steps, total // 5)
    every = max(1, round(run.decay_every * epochs)) * steps_per_epoch
    decay = run.lr_decay

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "step":
            return decay ** (step // every)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _values(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """The scalar loss terms as Python floats, in one device-to-host copy (one GPU synchronisation per step,
    not one per term)."""
    return dict(zip(terms, torch.stack([t.detach() for t in terms.values()]).tolist()))


def _check_finite(values: dict[str, float], where: str) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise TrainingError(f"non-finite loss at {where}: term '{name}' = {value}")


def pretrain_step(model, batch, run: TrainRun, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Loss terms of one pretraining step (random affine view, L1 on uvd joints)."""
    aug, dev = run.augment, model_device(model)
    x, A = geometric_view(style(batch["image"].to(dev, non_blocking=True), gen, aug), gen, aug)
    with _autocast(dev, run.amp):
        out = _float_outputs(model.pose_features(normalise(x)))
    gt = apply_affine_uvd(batch["uvd"], A).to(dev)
    w = run.loss
    terms = {"joint": L.l1_loss(out["uvd"], gt)}
    terms["lixel"] = L.lixel_loss(out["lixel_logits"], gt, w.lixel_sigma)
    terms["total"] = terms["joint"] + w.lixel * terms["lixel"]
    return terms


def finetune_step(model, batch, run: TrainRun, gen: torch.Generator, faces: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss terms of one end-to-end step over views a and b (paper §3.5): each a scalar tensor, ``total``
    included."""
    aug, w = run.augment, run.loss
    input_size, depth_range = run.input_size, run.depth_range
    b = batch["image"].shape[0]
    # augmentation draws from the CPU generator `gen` (reproducible on any device) and runs on the model's device
    dev = model_device(model)
    image = batch["image"].to(dev, non_blocking=True)
    xa = style(image, gen, aug)
    xb, A = geometric_view(style(image, gen, aug), gen, aug)
    use_clip = run.use_clip and "text" in batch and w.alpha4 > 0
    text = torch.cat([batch["text"], batch["text"]]).to(dev, non_blocking=True) if use_clip else None
    with _autocast(dev, run.amp):
        out = _float_outputs(model(normalise(torch.cat([xa, xb])), text))

    uvd_gt = torch.cat([batch["uvd"], apply_affine_uvd(batch["uvd"], A)]).to(dev)
    verts_gt = torch.cat([batch["verts_uvd"], apply_affine_uvd(batch["verts_uvd"], A)]).to(dev)
    A = A.to(dev)
    batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items() if k in ("K", "root_depth", "verts")}
    terms = {"joint": L.l1_loss(out["uvd"], uvd_gt), "vert": L.l1_loss(out["verts"], verts_gt),
             "lixel": L.lixel_loss(out["lixel_logits"], uvd_gt, w.lixel_sigma)}
    coarse = out.get("verts_coarse", [])
    for pred, target in zip(coarse, model.coarse_targets(uvd_gt, verts_gt)):
        terms["vert"] = terms["vert"] + L.l1_loss(pred, target) / len(coarse)

    # eq. 5 on view a, in camera-frame metres scaled by depth_range (the same order as uvd)
    pred_xyz = uvd_to_xyz(out["verts"][:b], batch["K"], batch["root_depth"], input_size, depth_range) / depth_range
    gt_xyz = batch["verts"] / depth_range
    faces = faces.to(dev)
    terms["normal"] = L.normal_loss(pred_xyz, gt_xyz, faces)
    terms["edge"] = L.edge_length_loss(pred_xyz, gt_xyz, faces)
    # eq. 6: view b's prediction against view a's mapped into b
    terms["consistency"] = (L.consistency_loss_2d(out["uvd"][:b, :, :2], out["uvd"][b:, :, :2], A)
                            + L.consistency_loss_3d(out["uvd"][:b], out["uvd"][b:]))
    if use_clip:  # in-batch negatives from the global batch of every process (identity with one process)
        clip, _ = L.clip_loss(distributed.gather_features(out["pose_emb"][:b]),
                              distributed.gather_features(out["text_emb"][:b]), out["logit_scale"])
        terms["clip"] = clip
    total = (w.alpha1 * (terms["joint"] + terms["vert"]) + w.lixel * terms["lixel"]
             + w.alpha2 * (terms["normal"] + terms["edge"])
             + w.alpha3 * terms["consistency"]
             + w.alpha4 * terms.get("clip", torch.zeros(())))
    terms["total"] = total
    return terms


class PhaseLoss(torch.nn.Module):
    """One training step's loss terms as a module: ``forward(batch, gen)`` → :func:`pretrain_step`'s or
    :func:`finetune_step`'s terms. DistributedDataParallel synchronises through ``forward()`` only, so it
    wraps this whole step (augmentation, model, losses), not the model's own ``forward``."""

    def __init__(self, model, run: TrainRun, faces: torch.Tensor | None = None):
        super().__init__()
        self.model, self.run, self.faces = model, run, faces

    def forward(self, batch: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
        if self.run.phase == "pretrain":
            return pretrain_step(self.model, batch, self.run, gen)
        return finetune_step(self.model, batch, self.run, gen, self.faces)


def _resume_state(work_path: Path, key: str, phase: str, main: bool) -> dict:
    """Rank 0 reads the resume checkpoint (ignored unless its fingerprint is ``key``); every rank gets it."""
    state: dict = {}
    if main and work_path.exists():
        try:
            state = torch.load(work_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a foreign or damaged file is ignored, never executed
            print(f"[{phase}] ignoring {work_path}: not a resume checkpoint ({str(exc).splitlines()[0][:120]})")
        if state.get("fingerprint") != key:
            state = {}
    return distributed.broadcast(state)


def train(model, train_set: PreparedSet, run: TrainRun, *, work_path: Path, faces: torch.Tensor | None = None,
          val_sets: dict[str, PreparedSet] | None = None, log: LogFn | None = None) -> list[dict]:
    """Train ``model`` in place for ``run.epochs`` epochs of ``run.phase``, resuming from ``work_path`` if it
    holds a checkpoint of the same settings.

    In a data-parallel run (N processes joined by :func:`cliphand.distributed.setup`) ``batch_size`` is the
    global batch B: each process trains on B / N samples of it, the model is wrapped in
    DistributedDataParallel, and rank 0 alone validates, prints, logs and writes ``work_path``.

    Args:
        run: the run's settings (:class:`cliphand.train.settings.TrainRun`: phase, epochs, global batch, optimizer
            and schedule, augmentation, loss weights, device (the model is moved there), amp (bfloat16 autocast
            on CUDA), seed, ``max_steps_per_epoch``, ``freeze_backbone``).
        work_path: the resume checkpoint, written atomically after every epoch and left in place at the end:
            the caller removes it once the final checkpoint is on disk, so a kill at any moment loses at
            most the current epoch. It is used only when its fingerprint matches: ``run``,
            the model's settings (``model.cfg``), the number of processes and :meth:`PreparedSet.content_hash` of the training data.
        faces: (F, 3) template faces (finetune).
        val_sets: name -> split scored after every epoch by :func:`validation_metrics` (e.g. the synthetic
            ``val`` split and ``real_dev``, the development subset of the real photos); recorded as
            ``<name>_pa_mpjpe_mm`` and ``<name>_mpjpe_mm``.
        log: called as ``log(metrics, epoch)`` after every epoch (MLflow).
    Returns:
        Per-epoch history: dicts of mean loss terms (over all processes), lr, validation errors (mm; rank 0),
        seconds and samples/s (global).
    Raises:
        TrainingError: a non-finite loss (names the phase, epoch, step and term); fewer samples than one
            batch; a batch size not divisible by the number of processes.
    """
    phase = run.phase
    world = distributed.world()
    epochs, bs = run.epochs, run.batch_size
    if len(train_set) < bs:
        raise TrainingError(f"{phase}: {len(train_set)} training samples are fewer than one batch of {bs}")
    if bs % world.size:
        raise TrainingError(f"{phase}: batch size {bs} is not divisible by the {world.size} training processes")
    local_bs, seed = bs // world.size, run.seed
    model.to(resolve_device(run.device))
    torch.manual_seed(seed + world.rank)  # dropout masks; augmentation draws from `gen`, one stream per process
    gen = torch.Generator().manual_seed(seed + world.rank)
    # one permutation per epoch (seed + epoch); process r takes positions r, r + N, ... of it, so global
    # batch k holds the same samples for any number of processes
    sampler = DistributedSampler(range(len(train_set)), num_replicas=world.size, rank=world.rank, shuffle=True,
                                 seed=seed, drop_last=True)
    steps = len(train_set) // bs
    if run.max_steps_per_epoch:
        steps = min(steps, run.max_steps_per_epoch)
    frozen = run.freeze_backbone
    model.backbone.requires_grad_(not frozen)  # before the optimizer: it takes the trainable parameters only
    opt, sched = make_optimizer(model, run, steps)
    key = fingerprint({"run": run.model_dump(), "model": model.cfg.model_dump(), "n": len(train_set), "processes": world.size,
                       "data": train_set.content_hash()})
    history: list[dict] = []
    start = 0
    work_path = Path(work_path)
    state = _resume_state(work_path, key, phase, world.main)
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["gen"][world.rank])
        torch.set_rng_state(state["torch_rng"][world.rank])
        history, start = state["history"], state["epoch"] + 1
        if world.main:
            print(f"[{phase}] resuming from {work_path} after epoch {start}/{epochs}")
    if world.size > 1 and run.sync_batchnorm and model_device(model).type == "cuda":
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # in place: the children are replaced
    step_loss = PhaseLoss(model, run, faces)
    if world.size > 1:  # parameters without a gradient: the mesh and CLIP heads in pretraining, CLIP without its loss
        clip_loss_on = phase == "finetune" and run.use_clip and run.loss.alpha4 > 0
        step_loss = DistributedDataParallel(step_loss, find_unused_parameters=phase == "pretrain" or not clip_loss_on)
    model.train()
    if frozen:  # fixed pretrained features: no backbone gradients, its batch-norm statistics kept
        model.backbone.eval()
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        sampler.set_epoch(epoch)
        order = np.fromiter(iter(sampler), dtype=np.int64)
        bar = tqdm(range(steps), desc=f"{phase} {epoch + 1}/{epochs}", leave=False, disable=not world.main)
        for step in bar:
            terms = step_loss(train_set.batch(order[step * local_bs:(step + 1) * local_bs]), gen)
            values = _values(terms)
            _check_finite(values, f"{phase} epoch {epoch + 1} step {step + 1}")
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            opt.step()
            sched.step()
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{values['total']:.4f}")
        bar.close()
        record = {f"loss_{k}": v / max(1, steps) for k, v in distributed.mean_over_ranks(sums).items()}
        record.update(epoch=epoch + 1, steps=steps, processes=world.size, lr=opt.param_groups[-1]["lr"],
                      seconds=round(time.perf_counter() - t0, 2),
                      samples_per_s=round(steps * bs / max(1e-9, time.perf_counter() - t0), 2))
        for name, vset in ((val_sets or {}) if world.main else {}).items():
            for k, v in validation_metrics(model, vset, run.input_size, run.depth_range).items():
                record[f"{name}_{k}"] = v
            model.train()
            if frozen:
                model.backbone.eval()
        history.append(record)
        rng_states = distributed.gather_objects((gen.get_state(), torch.get_rng_state()))
        if not world.main:
            continue
        print(f"[{phase}] epoch {epoch + 1}/{epochs} " + " ".join(
            f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float)))
        with atomic_path(work_path, suffix=".pt") as tmp:
            torch.save({"fingerprint": key, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "gen": [g for g, _ in rng_states],
                        "torch_rng": [t for _, t in rng_states], "history": history, "epoch": epoch}, tmp)
        if log is not None:
            log(record, epoch + 1)
    return history
