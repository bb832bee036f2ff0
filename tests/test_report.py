"""skmm.report: one self-contained HTML page whose figures are really there (and render in Chromium)."""

import base64
import io
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmm import AudioMFCC, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.report import report_html, write_report

pytest.importorskip("matplotlib", reason='the report needs matplotlib: pip install "skmm[plot]"')

FIGURE = re.compile(r'<img class="figure" alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    X, y = make_multimodal_classification(n_samples=90, directory=tmp_path_factory.mktemp("mm"), noise=0.7,
                                          random_state=0)
    X.loc[X.index[:5], "text"] = None  # an absent modality is shown as such
    return X, y


@pytest.fixture(scope="module")
def pipeline(tiny_image_model, tiny_text_model):
    return Pipeline([
        ("fusion", MultimodalFusion([
            ("image", ImageEncoder(tiny_image_model, verbose=0), "image"),
            ("text", TextEncoder(tiny_text_model, verbose=0), "text"),
            ("audio", AudioMFCC(verbose=0), "audio"),
            ("number", StandardScaler(), ["number"]),
        ])),
        ("clf", MultimodalClassifier(max_epochs=15, lr=3e-3, early_stopping=True, random_state=0)),
    ])


@pytest.fixture(scope="module")
def page(data, pipeline, tmp_path_factory):
    X, y = data
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert write_report(pipeline, X, y, path, cv=2, n_repeats=2, n_worst=4, random_state=0) == path
    return path


def test_report_embeds_its_figures_as_png(page):
    text = page.read_text()
    figures = FIGURE.findall(text)
    assert [alt for alt, _ in figures] == ["Confusion matrix", "Modality importance", "Training curve"]
    for _, data in figures:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.format == "PNG" and image.width > 200 and image.height > 100


def test_report_is_self_contained(page):
    text = page.read_text()
    assert not re.search(r'(src|href)="(?!data:)', text), "the page links to something outside itself"


def test_report_scores_per_class_and_cross_validation(page, data):
    _, y = data
    text = page.read_text()
    assert "a stratified hold-out of 23 rows" in text
    for label in sorted(set(y)):
        assert f"<th>{label}</th>" in text
    assert "recall" in text and "F1" in text and "macro F1" in text
    assert "Cross-validated scores" in text and "2 folds over all 90 rows" in text


def test_worst_rows_are_shown_as_they_are(page, data):
    X, _ = data
    text = page.read_text()
    worst = text.split('id="worst"')[1]
    assert worst.count('<img class="thumb"') == 4
    assert worst.count("<audio controls") == 4
    assert 'src="data:audio/wav;base64,' in worst
    assert "misclassified" in worst
    shown_rows = re.findall(r"<tr><td>(\d+)</td>", worst)
    assert len(shown_rows) == 4
    for row in shown_rows:
        sentence = X.loc[int(row), "text"]
        assert (sentence is None and "absent" in worst) or sentence[:30] in worst


def test_report_on_a_fitted_model_uses_the_rows_given(data, pipeline):
    X, y = data
    fitted = pipeline.fit(X.iloc[:60], y.iloc[:60])
    text = report_html(fitted, X.iloc[60:], y.iloc[60:], n_repeats=1, random_state=0)
    assert "the 30 rows given" in text
    assert len(FIGURE.findall(text)) == 3
    assert "Cross-validated scores" not in text


def test_report_wants_one_label_per_row(data, pipeline):
    X, y = data
    with pytest.raises(ValueError, match="X has 90 rows but y has 89 labels"):
        report_html(pipeline, X, y.iloc[1:])


def test_report_without_matplotlib_names_the_extra(data, pipeline, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    X, y = data
    with pytest.raises(ImportError, match=r'pip install "skmm\[plot\]"'):
        report_html(pipeline, X, y)


def _browser():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_browser() is None, reason="needs headless Chromium (Debian: apt-get install -y chromium)")
def test_report_figures_render_in_headless_chromium(page, tmp_path):
    screenshot = tmp_path / "report.png"
    command = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--screenshot={screenshot}", "--window-size=1200,3200", page.as_uri()]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert screenshot.exists(), "Chromium wrote no screenshot"
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)

    def share(colour, tolerance=30):
        return (np.abs(pixels - np.array(colour)).max(axis=2) < tolerance).mean()

    # only drawn figures have these colours: the page's own text and lines are black and grey
    assert share((8, 48, 107)) > 1e-4  # the dark blue of the confusion matrix's diagonal
    assert share((255, 127, 14)) > 1e-4  # matplotlib's orange: the permuted-importance bars
    assert share((31, 119, 180)) > 1e-4  # matplotlib's blue: absence bars and the training loss


def test_a_row_s_sound_is_previewed_within_a_bounded_size(tmp_path):
    import pandas as pd
    import soundfile

    from skmm import report

    assert "absent" in report._cell(pd.NA, "text") and "absent" in report._cell("  ", "image")
    long_sound = tmp_path / "long.flac"  # a long recording is previewed by its first seconds only
    soundfile.write(long_sound, np.sin(np.arange(44_100 * 120) / 7.0).astype(np.float32), 44_100)
    cell = report._cell(str(long_sound), "audio")
    wav = base64.b64decode(cell.split("base64,")[1].split('"')[0])
    assert wav.startswith(b"RIFF") and len(wav) <= 2 * 16_000 * report.AUDIO_PREVIEW_SECONDS + 100


def test_a_row_s_video_clip_is_previewed_by_a_few_frames(tmp_path):
    pytest.importorskip("av", reason="video needs PyAV")
    from skmm import report
    from skmm.datasets import _write_clip

    clip = tmp_path / "clip.mp4"
    frames = np.zeros((24, 64, 96, 3), dtype=np.uint8)
    frames[:, :, :48] = 255
    _write_clip(clip, frames, 12)
    cell = report._cell(str(clip), "video")
    assert cell.count('<img class="thumb" alt="video frame"') == report.VIDEO_PREVIEW_FRAMES
    assert "unreadable" in report._cell(b"not a clip", "video")
