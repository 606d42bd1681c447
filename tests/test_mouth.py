"""The mouth generator and its training: pairs made by the project's own warp from the talking demo
face, a small model that learns on them, checkpoints that resume, an ONNX export that matches."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from livemotion.cli import main
from livemotion.engines.mouth import (
    MouthGenerator,
    compose,
    lip_shape,
    load_mouth_model,
    mouth_onnx,
    save_mouth_model,
    shipped_mouth_model,
)
from livemotion.errors import InvalidRequest
from livemotion.io.sinks import open_sink
from livemotion.io.sources import DemoSource
from livemotion.training.mouth import TrainingRun, held_out, held_out_loss, prepare_pairs, train_mouth


@pytest.fixture(scope="module")
def talking_clips(tmp_path_factory):
    """The demo face talking, at two sizes: two 'people' for the split (one trained on, one held out)."""
    folder = tmp_path_factory.mktemp("mouth")
    clips = []
    for name, size in (("first", (320, 240)), ("second", (400, 300))):
        path = folder / f"{name}.mp4"
        sink = open_sink(str(path), size, 30.0)
        for frame in DemoSource(size, frames=60):
            sink.write(frame)
        sink.close()
        clips.append(path)
    return clips


@pytest.fixture(scope="module")
def pairs(talking_clips):
    return prepare_pairs(talking_clips, pairs_per_clip=40)


def test_pairs_are_the_same_face_carried_by_the_warp_to_another_frame(pairs):
    assert pairs.target.shape == (80, 64, 64, 3) and pairs.shape.shape == (80, 2, 64, 64)
    held = held_out(pairs.clip)
    assert 0 < held.sum() < len(held) and len(set(pairs.clip[held])) == 1  # a whole clip is held out
    # The warp brings frame i close to frame j: closer than frame i left where it was would be.
    assert np.abs(pairs.warped.astype(int) - pairs.target).mean() < 20
    inner = pairs.shape[:, 1] > 128  # the opening the target lip shape says
    assert inner.any(axis=(1, 2)).sum() > 10  # the demo talks: many targets have an open mouth


def test_a_small_model_learns_to_beat_the_warp_alone_on_held_out_frames(pairs, tmp_path):
    torch.manual_seed(0)
    untrained = held_out_loss(MouthGenerator(base=8), pairs.subset(np.nonzero(held_out(pairs.clip))[0]))
    log = train_mouth(pairs, tmp_path / "m.pt", steps=80, batch=8, checkpoint_every=40, base=8)
    assert [row["step"] for row in log] == [40, 80]
    assert log[-1]["held_out_loss"] < untrained  # output ~= the warped input before training
    model, record = load_mouth_model(tmp_path / "m.pt")
    assert record["steps"] == 80 and record["trained_on"] == sorted(set(pairs.clip[~held_out(pairs.clip)].tolist()))
    run = TrainingRun(tmp_path / "m.pt")
    assert run.sheet(80).stat().st_size > 1000 and run.checkpoint.exists()


def test_training_resumes_from_its_checkpoint(pairs, tmp_path):
    out = tmp_path / "m.pt"
    train_mouth(pairs, out, steps=20, batch=4, checkpoint_every=10, base=8)
    log = train_mouth(pairs, out, steps=30, batch=4, checkpoint_every=10, base=8, resume=True)
    assert [row["step"] for row in log] == [30]  # went on from 20, not from 0
    with TrainingRun(out).log.open() as file:
        assert [int(row["step"]) for row in csv.DictReader(file)] == [10, 20, 30]


def test_attention_one_gives_the_input_back_bit_exact():
    warped = torch.rand(2, 3, 64, 64)
    colour = torch.rand(2, 3, 64, 64)
    assert torch.equal(compose(warped, colour, torch.ones(2, 1, 64, 64)), warped)
    assert torch.equal(compose(warped, colour, torch.zeros(2, 1, 64, 64)), colour)


def test_the_lip_shape_marks_an_open_mouth_where_the_points_say():
    points = np.zeros((478, 2), np.float32) + 32
    from livemotion.face.mesh import INNER_LIP_CONTOUR, OUTER_LIP_CONTOUR

    angles = np.linspace(0, 2 * np.pi, len(OUTER_LIP_CONTOUR), endpoint=False)
    points[list(OUTER_LIP_CONTOUR)] = np.stack([32 + 20 * np.cos(angles), 40 + 10 * np.sin(angles)], 1)
    angles = np.linspace(0, 2 * np.pi, len(INNER_LIP_CONTOUR), endpoint=False)
    points[list(INNER_LIP_CONTOUR)] = np.stack([32 + 12 * np.cos(angles), 40 + 5 * np.sin(angles)], 1)
    outer, inner = lip_shape(points)
    assert inner[40, 32] > 0.9 and inner[40, 48] < 0.1 and outer[40, 48] > 0.9 and outer[10, 32] < 0.1


def test_the_onnx_export_matches_torch():
    onnxruntime = pytest.importorskip("onnxruntime")
    torch.manual_seed(1)
    model = MouthGenerator(base=8).eval()
    with torch.no_grad():  # weights that do something (a fresh head is all zeros)
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    inputs = [torch.rand(3, channels, 64, 64) for channels in (3, 2, 3)]
    with torch.no_grad():
        expected = [t.numpy() for t in model(*inputs)]
    session = onnxruntime.InferenceSession(mouth_onnx(model), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: t.numpy() for name, t in zip(("warped", "shape", "reference"), inputs)})
    for mine, theirs in zip(got, expected):
        assert np.abs(mine - theirs).max() <= 1 / 255


def test_a_corrupt_model_file_is_one_clear_line(tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    with pytest.raises(InvalidRequest, match="is not a livemotion mouth model"):
        load_mouth_model(broken)
    save_mouth_model(MouthGenerator(base=8), tmp_path / "good.pt", ["x"], 0)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((tmp_path / "good.pt").read_bytes()[:500])
    with pytest.raises(InvalidRequest, match="is not a livemotion mouth model"):
        load_mouth_model(truncated)
    assert main(["train-mouth", "--videos", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "m.pt")]) == 2
    assert "no such clip" in capsys.readouterr().err


def test_train_mouth_from_the_command_line(talking_clips, tmp_path, capsys):
    out, cache = tmp_path / "m.pt", tmp_path / "pairs.npz"
    args = ["train-mouth", "--videos", *map(str, talking_clips), "--out", str(out), "--steps", "6", "--batch", "4",
            "--pairs-per-clip", "8", "--pairs", str(cache), "--checkpoint-every", "3"]
    assert main(args) == 0
    assert out.exists() and cache.exists() and "held-out people" in capsys.readouterr().err
    assert main([*args[:-4], "--steps", "9", "--pairs", str(cache), "--resume"]) == 0  # reuses the pairs
    assert "pairs from" in capsys.readouterr().err and load_mouth_model(out)[1]["steps"] == 9


def _fixed(attention: float, colour: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> MouthGenerator:
    """A generator whose head ignores its input: this attention everywhere, this colour (logits)."""
    model = MouthGenerator(base=8)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([*colour, attention]))
    return model


def test_in_the_edit_attention_one_keeps_the_warps_mouth_and_zero_redraws_only_the_mouth(astronaut, astronaut_track):
    from helpers import edit_still

    from livemotion.expression.controller import ExpressionRequest
    from livemotion.face.alignment import align_mouth
    from livemotion.render.mouth import LearnedMouth

    request = ExpressionRequest("surprised", 1.0, active=True)
    warp_only, plan = edit_still(astronaut, astronaut_track, request)
    kept = LearnedMouth(_fixed(attention=50.0))(warp_only, astronaut_track, plan.target)
    assert np.array_equal(kept, warp_only)  # attention 1: every byte as the warp drew it
    redrawn = LearnedMouth(_fixed(attention=-50.0, colour=(-8.0, 8.0, -8.0)))(warp_only, astronaut_track, plan.target)
    changed = np.any(redrawn != warp_only, axis=2)
    centre = np.round(astronaut_track.landmarks[[13, 14], :2].mean(axis=0)).astype(int)
    assert redrawn[centre[1], centre[0], 1] > 200 and redrawn[centre[1], centre[0], 0] < 40  # the mouth: drawn green
    crop = align_mouth(astronaut_track, 64)
    ys, xs = np.nonzero(changed)
    inside = crop.points_to_crop(np.stack([xs, ys], 1).astype(float))
    assert inside.min() > -1 and inside.max() < 65  # nothing changed outside the mouth crop


def test_the_live_mouth_on_onnx_runtime_draws_what_torch_draws(astronaut, astronaut_track):
    """The edit's mouth stage on ONNX Runtime (what a CPU user gets by default) and on torch: the
    same pixels within 1/255 of colour, rounding aside."""
    pytest.importorskip("onnxruntime")
    from helpers import edit_still

    from livemotion.expression.controller import ExpressionRequest
    from livemotion.render.mouth import LearnedMouth

    torch.manual_seed(2)
    model = MouthGenerator(base=8).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    warp_only, plan = edit_still(astronaut, astronaut_track, ExpressionRequest("surprised", 1.0, active=True))
    drawn = {backend: LearnedMouth(model, backend)(warp_only, astronaut_track, plan.target)
             for backend in ("torch", "onnxruntime")}
    assert np.any(drawn["torch"] != warp_only)  # the model draws something
    assert np.abs(drawn["torch"].astype(int) - drawn["onnxruntime"]).max() <= 2
    with pytest.raises(InvalidRequest, match="torch, onnxruntime, tensorrt"):
        LearnedMouth(model, "coreml")


def test_the_shipped_mouth_names_its_clips_and_their_terms():
    """The model that ships was trained on clips under MIT, Apache-2.0 or CC-BY-4.0 terms only, each
    named with its licence beside the weights; it is small package data."""
    path = shipped_mouth_model()
    model, record = load_mouth_model(path)
    assert path.stat().st_size < 20_000_000 and record["steps"] > 0
    listed = {}
    for line in (path.parent / "mouth-clips.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, terms, repository = line.split("\t")
            listed[name] = terms
    assert all(terms.split(" ")[0] in ("MIT", "Apache-2.0", "CC-BY-4.0") for terms in listed.values()), listed
    trained = {f"{stem}.mp4" if f"{stem}.mp4" in listed else f"{stem}.mpg" for stem in record["trained_on"]}
    assert trained and trained <= set(listed)  # every clip it learned from is named with its terms


def test_fine_tuning_on_one_persons_takes_starts_from_the_shipped_model(talking_clips, tmp_path):
    """A calibration's fine-tune: the shipped model, a few steps on one person's clips (nobody is
    held out: it is their own model), written readable by them only, its record naming both."""
    import stat

    from livemotion.training.mouth import fine_tune_mouth

    out = fine_tune_mouth(talking_clips[:1], tmp_path / "me.mouth.pt", steps=3)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and list(tmp_path.iterdir()) == [out]  # no checkpoint left
    tuned, record = load_mouth_model(out)
    shipped, base = load_mouth_model(shipped_mouth_model())
    assert record["steps"] == base["steps"] + 3
    assert "first" in record["trained_on"] and set(base["trained_on"]) < set(record["trained_on"])
    changed = [not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), shipped.state_dict().values())]
    assert any(changed)


def test_run_with_the_learned_mouth_from_the_command_line(tmp_path, capsys):
    assert main(["run", "--source", "demo:320x240", "--sink", str(tmp_path / "o.mp4"), "--frames", "3",
                 "--emotion", "surprised", "--mouth", "learned"]) == 0  # the shipped model
    assert "mouth" in capsys.readouterr().err
    assert main(["run", "--source", "demo:160x120", "--sink", str(tmp_path / "o.mp4"), "--mouth-model", "m.pt"]) == 2
    assert "--mouth learned" in capsys.readouterr().err
    save_mouth_model(MouthGenerator(base=8), tmp_path / "m.pt", ["x"], 0)
    assert main(["run", "--source", "demo:320x240", "--sink", str(tmp_path / "o.mp4"), "--frames", "3",
                 "--emotion", "surprised", "--mouth", "learned", "--mouth-model", str(tmp_path / "m.pt")]) == 0
    assert "mouth" in capsys.readouterr().err  # its own stage in the timings


def test_build_engine_exports_the_mouth_for_tensorrt_and_checks_it_against_torch(tmp_path, monkeypatch, capsys):
    """The TensorRT recipe's first half runs anywhere: the generator exported to ONNX in the engines'
    cache, every operator one TensorRT 10 parses, ONNX Runtime's drawing within 1/255 of torch's. On a
    machine without TensorRT and a GPU, --backend tensorrt says what is missing in one line."""
    import onnx

    from livemotion.engines.backends import unsupported_tensorrt_ops

    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("LIVEMOTION_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(3)
    model = MouthGenerator(base=8)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    save_mouth_model(model, tmp_path / "m.pt", ["x"], 0)
    assert main(["build-engine", "--engine", "mouth", "--mouth-model", str(tmp_path / "m.pt")]) == 0
    said = capsys.readouterr().err
    exported = list((tmp_path / "cache").glob("mouth-64-*.onnx"))
    assert len(exported) == 1 and "every operator is supported by TensorRT 10" in said
    assert unsupported_tensorrt_ops(exported[0]) == set()
    assert [i.name for i in onnx.load(str(exported[0])).graph.input] == ["warped", "shape", "reference"]
    assert "within 1/255" in said and "onnxruntime mouth ready" in said
    if not torch.cuda.is_available():
        assert main(["build-engine", "--engine", "mouth", "--backend", "tensorrt"]) == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert "tensorrt" in error and ("TensorRT" in error or "GPU" in error)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA; this machine has none")
def test_the_learned_mouth_on_tensorrt_draws_what_torch_draws():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install -e '.[tensorrt]')")
    from livemotion.render.mouth import LearnedMouth

    model = load_mouth_model(shipped_mouth_model())[0]
    rng = np.random.default_rng(0)
    crop = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), rng.uniform(0, 1, (2, 64, 64)).astype(np.float32),
            rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)]
    built = LearnedMouth(model, "tensorrt")
    assert built.plan is not None and built.plan.plan_path.is_file()
    for mine, theirs in zip(built.draw(*crop), LearnedMouth(model, "torch").draw(*crop)):
        assert np.abs(mine - theirs).max() <= 1 / 255


def test_training_with_the_patch_critic_runs_and_resumes_with_it(pairs, tmp_path):
    out = tmp_path / "m.pt"
    train_mouth(pairs, out, steps=6, batch=4, checkpoint_every=3, base=8, critic=0.05)
    state = torch.load(str(TrainingRun(out).checkpoint), weights_only=False)
    assert "critic" in state and state["step"] == 6
    log = train_mouth(pairs, out, steps=9, batch=4, checkpoint_every=3, base=8, critic=0.05, resume=True)
    assert [row["step"] for row in log] == [9] and np.isfinite(log[0]["held_out_loss"])
