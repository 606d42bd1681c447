"""Reference styles: an emotion taken from one clip, stored under a name, shown like any emotion."""

import numpy as np
import pytest
from conftest import made_up_clip
from scipy.optimize import minimize

from livemotion.cli import main
from livemotion.errors import InvalidRequest
from livemotion.expression.controller import ExpressionController, ExpressionRequest
from livemotion.expression.library import LIBRARY_EMOTIONS, load_library
from livemotion.expression.profiles import resolve_library
from livemotion.expression.styles import extract_style, geometric_median, list_styles, load_style, save_style, styles_dir
from livemotion.face.mesh import INNER_BROW, both


@pytest.fixture(scope="module")
def raised_clips(tmp_path_factory):
    """40 frames of the talking astronaut at rest, and the same with her brows raised (AU1+2) throughout."""
    folder = tmp_path_factory.mktemp("style")
    return made_up_clip(folder / "rest.mp4", None, 40), made_up_clip(folder / "raised.mp4", {"1": 1.0, "2": 1.0}, 40)


@pytest.fixture(scope="module")
def raised(raised_clips):
    rest, raised = raised_clips
    return extract_style(raised, "wonder", neutral=rest)


def test_a_style_holds_the_clips_expression(raised):
    """The clip raises the inner brows (canonical y grows downwards) by a clear amount."""
    assert raised.windows == 3  # 40 frames: windows of 25 every 6 frames
    assert raised.geometry[list(both(INNER_BROW)), 1].mean() < -0.02


def test_a_stored_style_is_an_emotion_every_run_can_name(raised, tmp_path):
    path = save_style(raised)
    assert path.parent == styles_dir() and oct(path.stat().st_mode & 0o777) == "0o600"
    library = resolve_library()
    assert library.emotions == (*LIBRARY_EMOTIONS, "wonder")
    controller = ExpressionController(library=library)
    target = ExpressionRequest("wonder", 0.5, active=True).target(controller.fitted)
    assert target.emotions[0, library.emotion_index("wonder")] == 0.5  # its own row, at the intensity asked
    assert controller.fitted.aus[library.emotion_index("wonder")].max() > 0.3  # its motion reads as AUs (AU4)
    with pytest.raises(InvalidRequest, match="exists"):
        save_style(raised)
    with pytest.raises(InvalidRequest, match="not written"):
        library.save(tmp_path / "x.npz")  # styles stay apart from libraries


def test_a_damaged_style_is_left_out_and_named(raised, tmp_path):
    save_style(raised)
    (styles_dir() / "broken.npz").write_bytes(b"not a style")
    whole = (styles_dir() / "wonder.npz").read_bytes()
    (styles_dir() / "truncated.npz").write_bytes(whole[: len(whole) // 2])  # a zip cut short: BadZipFile
    assert [s.name for s in list_styles()] == ["wonder"]
    for name in ("broken", "truncated"):
        with pytest.raises(InvalidRequest, match="is not a livemotion style"):
            load_style(styles_dir() / f"{name}.npz")


def test_style_names_that_would_be_ambiguous_are_refused(raised):
    for name in ("happy", "live", "1st", "a b", "x" * 41):
        with pytest.raises(InvalidRequest, match="not allowed"):
            save_style(raised.__class__(**{**raised.__dict__, "name": name}))


def test_the_geometric_median_ignores_an_outlier():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [100.0, 100.0]])
    median = geometric_median(points)
    assert np.all((median > 0.0) & (median < 1.0))  # among the four, not dragged out (the mean is at 20.4)
    best = minimize(lambda x: np.linalg.norm(points - x, axis=1).sum(), points.mean(axis=0), method="Nelder-Mead",
                    options={"xatol": 1e-8, "fatol": 1e-10})
    assert np.allclose(median, best.x, atol=1e-3)


def test_style_from_the_command_line_then_run_shows_it(raised_clips, tmp_path, capsys):
    rest, raised = raised_clips
    assert main(["style", str(raised), "--name", "wonder", "--neutral", str(rest)]) == 0
    assert "stored style 'wonder'" in capsys.readouterr().err
    assert main(["styles"]) == 0
    assert "wonder" in capsys.readouterr().out
    out = tmp_path / "out.mp4"
    assert main(["run", "--source", str(rest), "--emotion", "wonder", "--sink", str(out), "--frames", "5", "-q"]) == 0
    assert main(["style", str(raised), "--name", "wonder"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["styles", "delete", "wonder"]) == 0
    assert main(["run", "--source", str(rest), "--emotion", "wonder", "--sink", str(tmp_path / "b.mp4"), "-q"]) == 2
    assert "unknown emotion 'wonder'" in capsys.readouterr().err
    assert load_library().styles == ()
