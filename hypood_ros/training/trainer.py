"""The training loop for both stages: single process, or one process per GPU/CPU under torchrun.

Rank 0 logs (stdout, CSV, TensorBoard when installed), validates and writes checkpoints; `last.pt`
holds everything needed to resume (read back with weights_only=True), `model.pt` is a project checkpoint.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from hypood_ros.errors import HypoodError
from hypood_ros.folders import missing_folders, remove_empty
from hypood_ros.model import build_segmentor, load_checkpoint, save_checkpoint
from hypood_ros.model.checkpoint import read_torch_file
from hypood_ros.training.cityscapes import CityscapesTrain, val_pairs
from hypood_ros.training.config import TrainConfig
from hypood_ros.training.losses import llr_loss, segmentation_loss
from hypood_ros.training.schedule import poly_with_warmup
from hypood_ros.training.validate import evaluate_miou

STATE_FORMAT = "hypood_ros.training_state"


class Distributed:
    """torchrun's environment, or a single process."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        self.device = torch.device(f"cuda:{self.local_rank}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1:
            torch.distributed.init_process_group("nccl" if cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def finish(self, timeout_s: float = 60.0) -> None:
        """Wait, through the rendezvous store, until every rank has left its last collective.

        A barrier is not enough before tearing the group down: a rank may leave it while a peer still reads
        the barrier's last message, and a group closed under that read can abort the peer (seen as a rare
        SIGABRT of one worker at the end of a finished run). Store requests are answered one by one, so
        none is left in flight.
        """
        if self.world == 1:
            return
        store = torch.distributed.distributed_c10d._get_default_store()
        store.add("hypood/finished", 1)
        deadline = time.monotonic() + timeout_s
        while store.add("hypood/finished", 0) < self.world and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        if self.world > 1:
            torch.distributed.destroy_process_group()


def build_model(cfg: TrainConfig):
    model = load_checkpoint(cfg.init) if cfg.init else build_segmentor(cfg.preset)
    model.freeze_backbone()
    trainable = ("decoder.", "head.") if cfg.stage == "segmentor" else ("uem.",)
    if cfg.train_backbone:  # no pretrained backbone exists (see TrainConfig.train_backbone)
        trainable = ("backbone.",) + trainable
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trainable))
    return model, trainable


def set_train_mode(model, trainable) -> None:
    """Only the trained parts are in train mode (frozen BatchNorm statistics stay as they are)."""
    model.eval()
    for name, module in model.named_children():
        if any(t.startswith(name + ".") for t in trainable):
            module.train()


def make_mixer(cfg: TrainConfig):
    if cfg.stage != "uem":
        return None
    from hypood_ros.training.anomaly_mix import AnomalyMix, CocoObjects, load_instances

    if cfg.outliers == "synthetic":
        from hypood_ros.synthetic.anomalies import SyntheticOutliers

        objects = SyntheticOutliers()
    elif not cfg.coco_annotations:
        raise HypoodError("stage 'uem' needs coco_annotations (instances_*.json) and coco_root, or outliers=synthetic")
    else:
        objects = CocoObjects(load_instances(cfg.coco_annotations, cfg.coco_root))
    return AnomalyMix(objects, cfg.ood_prob, cfg.paste_scale, cfg.ood_label, cfg.ignore_index)


class Logger:
    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        self.csv_path = out / "log.csv"
        new = not self.csv_path.exists()
        self.file = open(self.csv_path, "a", newline="")
        self.csv = csv.writer(self.file)
        if new:
            self.csv.writerow(["step", "loss", "lr", "seconds", "val_miou"])
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # TensorBoard is optional
            self.writer = None

    def log(self, step: int, loss: float, lr: float, seconds: float, val: Optional[float] = None) -> None:
        if not self.enabled:
            return
        self.csv.writerow([step, f"{loss:.6f}", f"{lr:.3e}", f"{seconds:.1f}", "" if val is None else f"{val:.4f}"])
        self.file.flush()
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)
            if val is not None:
                self.writer.add_scalar("val/miou", val, step)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.writer is not None:
                self.writer.close()


def save_state(path: Path, model, optimizer, scheduler, scaler, step: int, cfg: TrainConfig) -> None:
    state = {"format": STATE_FORMAT, "step": step, "config": dataclasses.asdict(cfg), "model_config": model.config,
             "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "scaler": scaler.state_dict()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def make_run_folder(out: Path) -> List[Path]:
    """The run folder and its missing parents, created now; returns the folders this call made."""
    made: List[Path] = []
    try:
        for folder in missing_folders(out):
            folder.mkdir()
            made.append(folder)
    except OSError as exc:
        discard_run(out, made)
        raise HypoodError(f"cannot create the run folder {out}: {exc.strerror or exc}") from None
    return made


def discard_run(out: Path, made: List[Path]) -> None:
    """A run that stopped before its first checkpoint has nothing to resume: remove what it wrote.

    Only the run's own files go (log.csv, tensorboard/, a half-written last.pt.tmp), then the folders
    this run created (`made`, outermost first), innermost first, if nothing else is in them.
    """
    if (out / "last.pt").exists():
        return  # resumable: keep the run as it is
    (out / "log.csv").unlink(missing_ok=True)
    (out / "last.pt.tmp").unlink(missing_ok=True)
    shutil.rmtree(out / "tensorboard", ignore_errors=True)
    remove_empty(made)


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = True) -> Path:
    """Train into cfg.out. The folder is created only once the model and the data are ready (a failed
    start leaves nothing), and a run that fails before its first checkpoint is removed again."""
    dist = Distributed()
    out = Path(cfg.out)
    made: Optional[List[Path]] = None  # rank 0: the folders this run created, once it has started
    logger = progress = None
    try:
        random.seed(cfg.seed + dist.rank)
        np.random.seed(cfg.seed + dist.rank)
        torch.manual_seed(cfg.seed)  # identical initialization on every rank

        model, trainable = build_model(cfg)
        model.to(dist.device)
        head = model.head_params()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = poly_with_warmup(optimizer, cfg.warmup_steps, cfg.steps, cfg.lr_end, cfg.power)
        use_amp = cfg.amp and dist.device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

        step = 0
        last = out / "last.pt"
        if resume and last.is_file():
            state = read_torch_file(last)
            if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
                raise HypoodError(f"{last}: not a training state written by `hypood train`")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            step = int(state["step"])
            if dist.main:
                print(f"resumed from {last} at step {step}", file=sys.stderr)

        dataset = CityscapesTrain(cfg.data_root, cfg.crop, cfg.scale, cfg.flip, cfg.seed, make_mixer(cfg))
        sampler = (torch.utils.data.distributed.DistributedSampler(dataset, dist.world, dist.rank, seed=cfg.seed)
                   if dist.world > 1 else torch.utils.data.RandomSampler(
                       dataset, generator=torch.Generator().manual_seed(cfg.seed)))
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                                             num_workers=cfg.num_workers, drop_last=len(dataset) >= cfg.batch_size,
                                             pin_memory=dist.device.type == "cuda")
        net = model
        if dist.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)

        dist.barrier()  # every rank has checked --out before rank 0 creates it
        if dist.main:
            made = make_run_folder(out)
        dist.barrier()
        logger = Logger(out, dist.main)
        if dist.main and show_progress and sys.stderr.isatty():  # a log file or pipe gets the log lines instead
            from tqdm import tqdm

            progress = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.stage}", unit="step", file=sys.stderr,
                            dynamic_ncols=True)
        start = time.monotonic()
        epoch = 0
        while step < cfg.steps:
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            dataset.epoch = epoch
            for images, labels in loader:
                set_train_mode(model, trainable)
                images, labels = images.to(dist.device, non_blocking=True), labels.to(dist.device, non_blocking=True)
                with torch.autocast(dist.device.type, dtype=torch.float16, enabled=use_amp):
                    outputs = net(images)
                if cfg.stage == "segmentor":
                    loss = segmentation_loss(outputs, labels, cfg.ignore_index)
                else:
                    loss = llr_loss(outputs, head, labels, cfg.ood_label, cfg.ignore_index)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{loss.item():.4f}")
                val = None
                if dist.main and cfg.stage == "segmentor" and cfg.val_every and step % cfg.val_every == 0:
                    val = evaluate_miou(model, val_pairs(cfg.data_root, cfg.val_images or None), cfg.val_window,
                                        cfg.val_stride, dist.device)
                if step % cfg.log_every == 0 or step == cfg.steps or val is not None:
                    logger.log(step, loss.item(), scheduler.get_last_lr()[0], time.monotonic() - start, val)
                    if dist.main and progress is None:
                        print(f"step {step}/{cfg.steps} loss {loss.item():.4f} lr {scheduler.get_last_lr()[0]:.2e}"
                              + ("" if val is None else f" val mIoU {val:.4f}"), flush=True)
                if dist.main and (step % cfg.ckpt_every == 0 or step == cfg.steps):
                    save_state(last, model, optimizer, scheduler, scaler, step, cfg)
                if step >= cfg.steps:
                    break
            epoch += 1
        if progress is not None:
            progress.close()
            progress = None
        logger.close()
        logger = None
        final = out / "model.pt"
        if dist.main:
            trained = dict(getattr(model, "metadata", {}).get("trained", {}))  # what the init already had
            trained.update({"decoder": True, "head": True} if cfg.stage == "segmentor" else {"uem": True})
            if cfg.train_backbone:
                trained["backbone"] = True
            metadata = {"trained_by": f"hypood train {cfg.stage}", "steps": step, "trained": trained}
            if cfg.stage == "segmentor":
                # The input size: the window validation measured the network at. Not the crop: a crop is a part
                # of a scale-jittered image (the demo's 126x252 out of 240x480 frames), while the node resizes a
                # whole frame to the input size. Stage uem validates at no size and keeps the size its init
                # records (save_checkpoint takes the model's own).
                metadata["input_size"] = list(cfg.val_window)
            save_checkpoint(model.cpu(), final, metadata=metadata)
        dist.barrier()
        dist.finish()
        return final
    except BaseException:
        if progress is not None:
            progress.close()  # the error goes on a line of its own
        if logger is not None:
            logger.close()
        if made is not None:
            discard_run(out, made)
        raise
    finally:
        dist.close()
