"""Training the mouth generator (``engines.mouth``) by the project's own code, on two CPU cores.

Pairs are self-supervised, from clips of people talking. For two frames i and j of one clip, in
frame j's mouth crop:

- input: frame i carried to frame j's landmarks by the project's own warp (``face.flow``), what
  geometry alone draws; frame j's lip shape (``lip_shape``); the clip's most open mouth (reference);
- target: frame j itself.

So the generator learns to draw what the warp cannot: lips that part, teeth that show, an interior
that opens. ``prepare_pairs`` tracks each clip once and makes the pairs (uint8 arrays, cached to an
npz), ``train_mouth`` fits the model with L1 and image-gradient losses (no blur towards the mean),
holding out whole clips (people) for the validation loss, with checkpoints to resume from, a CSV
log and a sample sheet per checkpoint.
"""

from __future__ import annotations

import csv
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ..engines.mouth import SIZE, MouthGenerator, lip_shape, load_mouth_model, save_mouth_model, shipped_mouth_model
from ..errors import InvalidRequest
from ..face.alignment import Alignment, align_mouth
from ..face.canonical import canonical_landmarks, inner_lip_gap
from ..face.flow import pinned_flow
from ..face.tracking import tracked_frames
from ..io.files import write_whole
from ..types import FaceTrack

_CONTEXT = 2  # frames are kept as a crop this many times wider than the mouth crop, for the pairs' warps
_GAP = (3, 90)  # frames between i and j: a syllable or two to three seconds apart
_WARP = {"grid": 16, "sigma": 0.08, "refinements": 2}  # the mouth crop's warp: sigma as a share of the side
HELD_OUT_SHARE = 0.2  # people never trained on, for the validation loss
# Fine-tuning on one person's takes: 400 steps at batch 16 take 38 s on the 2-core VM (with the
# pairs, ~45 s), at a quarter of the training's learning rate so the shipped model is adjusted, not replaced.
FINE_TUNE_STEPS, FINE_TUNE_RATE = 400, 5e-4


@dataclass
class MouthPairs:
    """Training pairs as uint8 arrays (N pairs, S = the crop's side)."""

    warped: np.ndarray  # (N, S, S, 3) frame i carried to frame j's landmarks
    shape: np.ndarray  # (N, 2, S, S) frame j's lip shape, 0..255
    reference: np.ndarray  # (N, S, S, 3) the clip's most open mouth
    target: np.ndarray  # (N, S, S, 3) frame j
    clip: np.ndarray  # (N,) the clip each pair came from (a person)

    def save(self, path: str | Path) -> None:
        """Keep the pairs for the next training run (building them tracks every clip)."""
        import io

        buffer = io.BytesIO()
        np.savez(buffer, warped=self.warped, shape=self.shape, reference=self.reference, target=self.target,
                 clip=self.clip)
        write_whole(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> MouthPairs:
        """Pairs ``save`` wrote."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["warped"], data["shape"], data["reference"], data["target"], data["clip"])

    def subset(self, rows: np.ndarray) -> MouthPairs:
        """The pairs at ``rows``."""
        return MouthPairs(self.warped[rows], self.shape[rows], self.reference[rows], self.target[rows], self.clip[rows])


@dataclass
class _TrackedFrame:
    context: np.ndarray  # (C, C, 3) uint8, the frame around the mouth, C = _CONTEXT * SIZE
    to_context: np.ndarray  # (2, 3) frame -> context pixels
    track: FaceTrack
    gap: float  # inner-lip gap, canonical units


def _track_clip(path: Path, max_frames: int) -> list[_TrackedFrame]:
    frames = []
    for frame, track in tracked_frames(path, max_frames):
        wide = align_mouth(track, _CONTEXT * SIZE, iods=_CONTEXT * 1.25)
        context = cv2.warpAffine(frame.image, wide.to_crop, (wide.size, wide.size), flags=cv2.INTER_AREA,
                                 borderMode=cv2.BORDER_REFLECT101)
        frames.append(_TrackedFrame(context, wide.to_crop, track, float(inner_lip_gap(canonical_landmarks(track)))))
    return frames


def _compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) affine ``outer`` after ``inner``."""
    return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


def _in_crop(frame: _TrackedFrame, crop: Alignment) -> np.ndarray:
    """``frame``'s picture in ``crop`` (another frame's mouth crop), from its context crop."""
    to_crop = _compose_affine(crop.to_crop, cv2.invertAffineTransform(frame.to_context))
    return cv2.warpAffine(frame.context, to_crop, (crop.size, crop.size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)


def carry(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``image`` (S, S, 3) warped so that points ``source`` (N, 2) move to ``target`` (N, 2), crop
    pixels, with the project's own flow (the border pinned), resampled once."""
    size = image.shape[0]
    inside = np.all((source > -0.2 * size) & (source < 1.2 * size) & (target > -0.2 * size) & (target < 1.2 * size),
                    axis=1)
    with torch.inference_mode():
        flow = pinned_flow(torch.as_tensor(source[inside][None], dtype=torch.float32),
                           torch.as_tensor(target[inside][None], dtype=torch.float32), size, int(_WARP["grid"]),
                           float(_WARP["sigma"]) * size, int(_WARP["refinements"]))[0].numpy()
    dense = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in flow])
    xx, yy = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    return cv2.remap(image, xx + dense[0], yy + dense[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def prepare_pairs(videos: Iterable[str | Path], pairs_per_clip: int = 200, max_frames: int = 300, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> MouthPairs:
    """Track each clip once and make ``pairs_per_clip`` pairs of it (see the module's text)."""
    rng = np.random.default_rng(seed)
    report = progress or (lambda _: None)
    parts: dict[str, list[np.ndarray]] = {"warped": [], "shape": [], "reference": [], "target": [], "clip": []}
    for path in map(Path, videos):
        frames = _track_clip(path, max_frames)
        if len(frames) < _GAP[0] + 2:
            report(f"{path.name}: skipped, a face in only {len(frames)} frames")
            continue
        widest = max(frames, key=lambda f: f.gap)
        reference = _in_crop(widest, align_mouth(widest.track, SIZE))
        for _ in range(pairs_per_clip):
            j = int(rng.integers(len(frames)))
            choices = [i for i in range(len(frames)) if _GAP[0] <= abs(i - j) <= _GAP[1]]
            if not choices:
                continue
            i = int(rng.choice(choices))
            crop = align_mouth(frames[j].track, SIZE)
            source = crop.points_to_crop(frames[i].track.landmarks[:, :2])
            target_points = crop.points_to_crop(frames[j].track.landmarks[:, :2])
            parts["warped"].append(carry(_in_crop(frames[i], crop), source, target_points))
            parts["shape"].append((lip_shape(target_points) * 255).astype(np.uint8))
            parts["reference"].append(reference)
            parts["target"].append(_in_crop(frames[j], crop))
            parts["clip"].append(np.array(path.stem))
        report(f"{path.name}: {len(frames)} frames tracked, {pairs_per_clip} pairs")
    if not parts["target"]:
        raise InvalidRequest("no clip gave training pairs: give videos of one face talking, a few seconds each")
    return MouthPairs(*(np.stack(parts[key]) for key in ("warped", "shape", "reference", "target", "clip")))


def person_of(clip: str) -> str:
    """A clip's person, as far as its name tells: numbered takes of one name are one person
    (styletalk_Obama_clip1 and _clip2, megactor_audio_CHTF_2 to _4, retalking_1 to _5). Where the
    name cannot tell, clips are grouped rather than split: a person is never on both sides."""
    name = re.sub(r"(_clip)?[_-]?\d+(_short)?$", "", clip)
    return re.sub(r"_clip$", "", name) or clip


def held_out(clips: np.ndarray, share: float = HELD_OUT_SHARE) -> np.ndarray:
    """(N,) bool: the pairs whose person (``person_of`` their clip) is held out from training,
    chosen by a hash of the person's name (the same people every run, whatever else is added)."""
    people = [person_of(name) for name in clips.tolist()]
    names = sorted(set(people))
    kept_out = {name for name in names if zlib.crc32(name.encode()) % 1000 < share * 1000}
    if len(names) > 1 and not kept_out:  # a handful of people: still hold one out
        kept_out = {names[-1]}
    return np.array([person in kept_out for person in people])


def _batch(pairs: MouthPairs, rows: np.ndarray, device: str) -> tuple[torch.Tensor, ...]:
    def tensor(images: np.ndarray, channels_last: bool = True) -> torch.Tensor:
        values = torch.as_tensor(images, dtype=torch.float32, device=device) / 255.0
        return values.permute(0, 3, 1, 2) if channels_last else values

    return (tensor(pairs.warped[rows]), tensor(pairs.shape[rows], channels_last=False), tensor(pairs.reference[rows]),
            tensor(pairs.target[rows]))


def mouth_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 on the pixels plus L1 on their horizontal and vertical differences: edges (lips, teeth)
    cost as much as colours, so the model is not paid to blur."""
    def gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]

    (ox, oy), (tx, ty) = gradients(output), gradients(target)
    return ((output - target).abs().mean() + (ox - tx).abs().mean() + (oy - ty).abs().mean())


@dataclass
class TrainingRun:
    """Where a training run keeps its files, beside the model ``out``."""

    out: Path

    @property
    def checkpoint(self) -> Path:
        """Model, optimiser and step, to resume from (not shipped)."""
        return self.out.with_suffix(".ckpt")

    @property
    def log(self) -> Path:
        """One CSV row per checkpoint: step, train loss, held-out loss, the warp alone's loss on the
        same held-out pairs, pairs a second."""
        return self.out.with_suffix(".csv")

    def sheet(self, step: int) -> Path:
        """The sample sheet of the checkpoint at ``step``."""
        return self.out.with_name(f"{self.out.stem}-samples") / f"step-{step:07d}.png"


def _sample_sheet(model: MouthGenerator, pairs: MouthPairs, path: Path, device: str) -> None:
    """Rows of held-out pairs: warped input | output | target | attention, at 2x."""
    rows = np.arange(min(6, len(pairs.target)))
    warped, shape, reference, target = _batch(pairs, rows, device)
    with torch.no_grad():
        output, attention = model(warped, shape, reference)
    tiles = []
    for index in range(len(rows)):
        parts = [warped[index], output[index], target[index], attention[index].expand(3, -1, -1)]
        tiles.append(np.hstack([(p.permute(1, 2, 0).cpu().numpy() * 255).clip(0, 255).astype(np.uint8) for p in parts]))
    sheet = cv2.resize(np.vstack(tiles), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def _read_log(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open() as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file)]


def _mean_loss(pairs: MouthPairs, drawn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
               device: str) -> float:
    """``mouth_loss`` of ``drawn(warped, shape, reference)`` against the targets, over every pair, in chunks."""
    total = 0.0
    with torch.no_grad():
        for chunk in np.array_split(np.arange(len(pairs.target)), max(1, len(pairs.target) // 64)):
            warped, shape, reference, target = _batch(pairs, chunk, device)
            total += float(mouth_loss(drawn(warped, shape, reference), target)) * len(chunk)
    return total / len(pairs.target)


def held_out_loss(model: MouthGenerator, pairs: MouthPairs, device: str = "cpu") -> float:
    """``mouth_loss`` of ``model`` over every pair in ``pairs`` (in eval mode)."""
    was_training = model.training
    model.eval()
    loss = _mean_loss(pairs, lambda warped, shape, reference: model(warped, shape, reference)[0], device)
    model.train(was_training)
    return loss


def warp_only_loss(pairs: MouthPairs) -> float:
    """``mouth_loss`` of the warped inputs themselves: what the generator has to beat."""
    return _mean_loss(pairs, lambda warped, shape, reference: warped, "cpu")


class PatchCritic(nn.Module):
    """A small patch critic (PatchGAN): a score per 8x8 patch of the mouth crop, real or drawn.
    It pays the generator for texture (separate teeth, a lip's edge) that L1 alone averages away."""

    def __init__(self, base: int = 16):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, base, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(base, 2 * base, 4, 2, 1), nn.GroupNorm(4, 2 * base), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * base, 4 * base, 4, 2, 1), nn.GroupNorm(4, 4 * base), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * base, 1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) 0..1 -> (B, 1, S/8, S/8) scores (high: looks real)."""
        return self.layers(image * 2.0 - 1.0)


def train_mouth(pairs: MouthPairs, out: str | Path, steps: int, resume: bool = False, batch: int = 16,
                device: str = "cpu", checkpoint_every: int = 200, base: int = 16, learning_rate: float = 2e-3,
                seed: int = 0, on_step: Callable[[int, float], None] | None = None,
                critic: float = 0.0, start_from: str | Path | None = None) -> list[dict[str, float]]:
    """Train (or, with ``resume``, go on training) the mouth generator on ``pairs`` up to ``steps``
    steps. At each checkpoint the model is written to ``out`` when its held-out loss is the best so
    far (later steps that only fit the training people better are not kept). ``critic`` > 0 adds a
    patch critic's hinge loss at that weight. ``start_from``: a model to fine-tune on one person's
    pairs (``fine_tune_mouth``): nobody is held out then, and the loss is measured on what it
    trains on. The rows of the log."""
    run = TrainingRun(Path(out))
    out_of_training = held_out(pairs.clip) if start_from is None else np.zeros(len(pairs.clip), bool)
    train_rows, valid_rows = np.nonzero(~out_of_training)[0], np.nonzero(out_of_training)[0]
    if not len(train_rows):
        raise InvalidRequest("every clip is held out: give more clips (whole clips are kept for measuring)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if start_from is not None:
        model, record = load_mouth_model(start_from)
        model.train().to(device)
    else:
        model, record = MouthGenerator(base=base).to(device), {"trained_on": [], "steps": 0}
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    judge = PatchCritic().to(device) if critic > 0 else None
    judge_optimiser = torch.optim.Adam(judge.parameters(), lr=learning_rate, betas=(0.5, 0.999)) if judge else None
    step, log = 0, []
    if resume and run.checkpoint.exists():
        state = torch.load(str(run.checkpoint), map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        if judge is not None and judge_optimiser is not None and "critic" in state:
            judge.load_state_dict(state["critic"])
            judge_optimiser.load_state_dict(state["critic_optimiser"])
        step, rng = int(state["step"]), state["rng"]
    elif run.log.exists():
        run.log.unlink()  # a fresh run starts a fresh log
    trained_on = sorted(set(record["trained_on"]) | set(pairs.clip[train_rows].tolist()))
    validation = pairs.subset(valid_rows if len(valid_rows) else train_rows[:32])
    baseline = warp_only_loss(validation)
    started, done_since = time.perf_counter(), 0
    best = min((row["held_out_loss"] for row in _read_log(run.log)), default=float("inf")) if resume else float("inf")
    model.train()
    while step < steps:
        rows = rng.choice(train_rows, size=min(batch, len(train_rows)), replace=False)
        warped, shape, reference, target = _batch(pairs, rows, device)
        output, _ = model(warped, shape, reference)
        loss = mouth_loss(output, target)
        total = loss
        if judge is not None and judge_optimiser is not None:
            judged = nn.functional.relu(1.0 - judge(target)).mean() + nn.functional.relu(1.0 + judge(output.detach())).mean()
            judge_optimiser.zero_grad()
            judged.backward()
            judge_optimiser.step()
            total = loss - critic * judge(output).mean()  # hinge loss: the generator raises the critic's score
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        step += 1
        done_since += len(rows)
        if on_step is not None:
            on_step(step, loss.item())
        if step % checkpoint_every == 0 or step == steps:
            row = {"step": step, "train_loss": loss.item(), "held_out_loss": held_out_loss(model, validation, device),
                   "warp_only_loss": baseline,
                   "samples_per_second": done_since / (time.perf_counter() - started)}
            log.append(row)
            new_log = not run.log.exists()
            with run.log.open("a", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=list(row))
                if new_log:
                    writer.writeheader()
                writer.writerow(row)
            state = {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step, "rng": rng}
            if judge is not None and judge_optimiser is not None:
                state.update(critic=judge.state_dict(), critic_optimiser=judge_optimiser.state_dict())
            torch.save(state, str(run.checkpoint))
            if row["held_out_loss"] < best:  # the model file is the best on the held-out people so far
                best = row["held_out_loss"]
                save_mouth_model(model.cpu(), run.out, trained_on, int(record["steps"]) + step)
                model.to(device)
            _sample_sheet(model, validation, run.sheet(step), device)
            started, done_since = time.perf_counter(), 0
    return log


def fine_tune_mouth(videos: Iterable[str | Path], out: str | Path, start_from: str | Path | None = None,
                    steps: int | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """The mouth generator ``start_from`` (default: the shipped one) fine-tuned on one person's clips
    (a calibration's takes) for ``steps`` (default ``FINE_TUNE_STEPS``), written to ``out``
    readable by the user only; nothing else is kept."""
    steps = FINE_TUNE_STEPS if steps is None else steps
    pairs = prepare_pairs(videos, pairs_per_clip=150, progress=progress)
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder) / "mouth.pt"
        train_mouth(pairs, scratch, steps, checkpoint_every=steps, learning_rate=FINE_TUNE_RATE,
                    start_from=start_from or shipped_mouth_model())
        write_whole(out, scratch.read_bytes(), private=True)
    return Path(out)


def model_summary(path: str | Path) -> str:
    """One line about a trained model: its steps and clips."""
    model, record = load_mouth_model(path)
    parameters = sum(p.numel() for p in model.parameters())
    return f"{path}: {parameters:,} parameters, {record['steps']} steps, trained on {len(record['trained_on'])} clips"
