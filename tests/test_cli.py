"""The ``skmm`` command line: a fit → predict → serve round trip through subprocesses, and errors."""

import base64
import io
import json
import os
import subprocess
import sys
import types
import urllib.request

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import skmm
import skmm.persistence  # noqa: F401 - skmm.persistence.read_metadata below
from skmm.cli import main

SAMPLE_RATE = 16_000


def run(*args, cwd=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "skmm", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
    )


def write_dataset(folder, n=20, seed=0):
    """PNG and WAV files next to a CSV that names them by relative path."""
    import soundfile

    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "audio").mkdir()
    rows = []
    for i in range(n):
        cat = i % 2 == 0
        pixels = np.clip(
            np.array((220, 40, 40) if cat else (40, 80, 220)) + rng.normal(0, 20, (24, 24, 3)), 0, 255
        ).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{i}.png")
        t = np.arange(int(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
        tone = 0.4 * np.sin(2 * np.pi * (300 if cat else 1800) * t) + rng.normal(0, 0.01, t.size)
        soundfile.write(folder / "audio" / f"{i}.wav", tone.astype(np.float32), SAMPLE_RATE)
        rows.append({
            "photo": f"images/{i}.png",
            "voice": f"audio/{i}.wav" if i != 3 else None,
            "review": ("the kitten purred on the warm windowsill" if cat
                       else "the puppy barked at the postman") + f" on day {i}",
            "weight": float(rng.normal(4 if cat else 20, 2)),
            "colour": rng.choice(["black", "white", "ginger"]),
            "label": "cat" if cat else "dog",
        })
    df = pd.DataFrame(rows)
    df.to_csv(folder / "train.csv", index=False)
    df.drop(columns="label").iloc[:6].to_csv(folder / "new.csv", index=False)
    return df


@pytest.fixture(scope="module")
def fitted_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    df = write_dataset(root / "data")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    # run from another folder: relative paths in the CSV must resolve against the CSV's folder
    result = run("fit", root / "data" / "train.csv", "--target", "label", "--cv", "2",
                 "--max-epochs", "10", "--out", root / "model.skmm", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    return root, df, result


def test_fit_reports_kinds_scores_and_saves(fitted_model):
    root, _, result = fitted_model
    out = result.stdout
    for line in ("photo   image", "voice   audio", "review  text", "weight  numeric",
                 "colour  categorical"):
        assert line in out
    assert "Cross-validated (2-fold) accuracy:" in out and "macro F1:" in out
    assert f"saved to {root / 'model.skmm'}" in out
    # what a long fit is doing, on stderr: each fold as it ends, the final fit, where embeddings go
    for step in ("fold 1/2: accuracy", "fold 2/2: accuracy", "s left)", "Fitting on all 20 rows",
                 "embeddings are cached in"):
        assert step in result.stderr
    meta = skmm.persistence.read_metadata(root / "model.skmm")
    assert meta["kinds"] == {"photo": "image", "voice": "audio", "review": "text",
                             "weight": "numeric", "colour": "categorical"}
    assert meta["classes"] == ["cat", "dog"]
    assert meta["modalities"]["numeric"] == ["weight"]
    assert type(skmm.load(root / "model.skmm").named_steps["clf"]).__name__ == "MultimodalClassifier"


def in_process_expectation(root):
    pipe = skmm.load(root / "model.skmm")
    new = pd.read_csv(root / "data" / "new.csv")
    for column in ("photo", "voice"):
        new[column] = [str(root / "data" / v) if isinstance(v, str) else None for v in new[column]]
    return pipe, pipe.predict(new), pipe.predict_proba(new)


def test_predict_to_stdout_matches_the_model(fitted_model):
    root, _, _ = fitted_model
    result = run("predict", root / "model.skmm", root / "data" / "new.csv", cwd=root)
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(io.StringIO(result.stdout))
    assert list(got.columns) == ["prediction", "proba_cat", "proba_dog"]
    _, labels, probabilities = in_process_expectation(root)
    assert got["prediction"].tolist() == labels.tolist()
    np.testing.assert_allclose(got[["proba_cat", "proba_dog"]].to_numpy(), probabilities, atol=1e-5)
    assert (got["prediction"] == ["cat", "dog"] * 3).mean() >= 5 / 6  # it learned something


def test_predict_to_file_in_process(fitted_model, tmp_path, capsys):
    root, _, _ = fitted_model
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(root / "model.skmm"), str(root / "data" / "new.csv"),
                 "--out", str(out)]) == 0
    assert "Predictions for 6 rows written to" in capsys.readouterr().err
    assert len(pd.read_csv(out)) == 6


def test_export_to_onnx_predicts_as_the_model(fitted_model, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from skmm.onnx import OnnxModel

    root, _, _ = fitted_model
    assert main(["export", str(root / "model.skmm"), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    assert "manifest.json" in capsys.readouterr().out
    pipe, labels, probabilities = in_process_expectation(root)
    new = pd.read_csv(root / "data" / "new.csv")
    for column in ("photo", "voice"):
        new[column] = [str(root / "data" / v) if isinstance(v, str) else None for v in new[column]]
    model = OnnxModel(tmp_path / "onnx")
    np.testing.assert_allclose(model.predict_proba(new), probabilities, atol=1e-4)
    assert model.predict(new).tolist() == labels.tolist()
    # a second export to the same folder is refused, the first one kept
    assert main(["export", str(root / "model.skmm"), "--out", str(tmp_path / "onnx")]) == 1
    assert "overwrite" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_round_trip(fitted_model):
    from test_serve import Server

    root, _, _ = fitted_model
    pipe, labels, probabilities = in_process_expectation(root)
    new = pd.read_csv(root / "data" / "new.csv")
    server = Server(root / "model.skmm", root)
    try:
        with urllib.request.urlopen(server.url + "/metadata", timeout=30) as answer:
            assert json.loads(answer.read())["kinds"]["voice"] == "audio"
        rows = []
        for record in new.to_dict("records"):
            row = dict(record)
            for column in ("photo", "voice"):
                value = record[column]
                row[column] = (base64.b64encode((root / "data" / value).read_bytes()).decode()
                               if isinstance(value, str) else None)
            rows.append(row)
        status, body = server.post_json({"rows": rows})
        assert status == 200, body
        for answer, label, row in zip(body["predictions"], labels, probabilities):
            assert answer["label"] == label
            np.testing.assert_allclose(list(answer["probabilities"].values()), row, atol=1e-5)

        first = new.iloc[0]
        fields = {"review": first["review"], "weight": str(first["weight"]), "colour": first["colour"]}
        files = {"photo": ("cat.png", (root / "data" / first["photo"]).read_bytes()),
                 "voice": ("cat.wav", (root / "data" / first["voice"]).read_bytes())}
        status, body = server.post_form(fields, files)
        assert status == 200, body
        assert body["predictions"][0]["label"] == labels[0]
        np.testing.assert_allclose(
            list(body["predictions"][0]["probabilities"].values()), probabilities[0], atol=1e-5
        )
        # an audio column refuses an image
        status, body = server.post_form(fields, {**files, "voice": files["photo"]})
        assert status == 422 and "'voice'" in body["error"]
    finally:
        server.stop()


# --------------------------------------------------------------------------- help and errors


@pytest.mark.parametrize("command", [[], ["fit"], ["predict"], ["export"], ["serve"], ["report"], ["demo"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: skmm" in capsys.readouterr().out


def test_help_through_the_console_entry_point():
    result = run("serve", "--help")
    assert result.returncode == 0 and "--max-body-mb" in result.stdout


def test_user_error_in_subprocess_has_no_traceback(tmp_path):
    result = run("fit", tmp_path / "missing.csv", "--target", "y")
    assert result.returncode == 1
    assert "data file not found" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def small_csv(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=12), "tag": ["a", "b", "c"] * 4,
                       "id": [f"user{i}" for i in range(12)], "y": ["p", "q"] * 6})
    df.to_csv(tmp_path / "small.csv", index=False)
    return tmp_path / "small.csv"


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "{csv}", "--target", "nope"], "--target 'nope' is not a column"),
        (["fit", "{csv}", "--target", "y", "--out", "{dir}/m.skmm"], "'id'"),
        (["fit", "{csv}", "--target", "y", "--override", "id=pictures"], "COLUMN=KIND"),
        (["fit", "{csv}", "--target", "y", "--override", "id=drop", "--cv", "9"], "--cv 9"),
        (["predict", "{csv}", "{csv}"], "not an skmm model file"),
        (["serve", "{dir}/none.skmm"], "model file not found"),
        (["serve", "{csv}"], "not an skmm model file"),
    ],
    ids=["bad-target", "unclassifiable", "bad-override", "too-many-folds", "predict-not-model",
         "serve-missing", "serve-not-model"],
)
def test_user_errors(small_csv, capsys, args, message):
    args = [a.format(csv=small_csv, dir=small_csv.parent) for a in args]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err


def test_fit_and_predict_tabular_in_process(small_csv, tmp_path, capsys):
    model = tmp_path / "m.skmm"
    assert main(["fit", str(small_csv), "--target", "y", "--override", "id=drop",
                 "--max-epochs", "2", "--fusion", "gated", "--out", str(model)]) == 0
    out = capsys.readouterr().out
    assert "id   drop" in out and "saved to" in out
    assert skmm.load(model).named_steps["clf"].fusion == "gated"
    pd.read_csv(small_csv).drop(columns=["x"]).to_csv(tmp_path / "lacking.csv", index=False)
    assert main(["predict", str(model), str(tmp_path / "lacking.csv")]) == 1
    assert "lacks column(s) ['x']" in capsys.readouterr().err


def test_fit_infers_each_column_kind_once(small_csv, tmp_path, monkeypatch, capsys):
    import skmm.infer

    seen = []
    original = skmm.infer._kind_of_column

    def counting(column, series, base_dir):
        seen.append(column)
        return original(column, series, base_dir)

    monkeypatch.setattr(skmm.infer, "_kind_of_column", counting)
    assert main(["fit", str(small_csv), "--target", "y", "--override", "id=drop",
                 "--max-epochs", "1", "--out", str(tmp_path / "m.skmm")]) == 0
    assert sorted(seen) == ["tag", "x"]  # 'id' is overridden, 'y' is the target


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "data.csv"])
    assert exit_info.value.code == 2
    assert "--target" in capsys.readouterr().err


def test_demo_forwards_only_given_options(monkeypatch):
    calls = []
    fake = types.ModuleType("skmm.demo")
    fake.run_demo = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, "skmm.demo", fake)
    monkeypatch.setattr(skmm, "demo", fake, raising=False)
    assert main(["demo", "--n-samples", "30", "--output-dir", "out"]) == 0
    assert calls == [{"output_dir": "out", "n_samples": 30}]



def test_predict_huge_and_infinite_numbers(small_csv, tmp_path, capsys):
    model = tmp_path / "m.skmm"
    assert main(["fit", str(small_csv), "--target", "y", "--override", "id=drop",
                 "--max-epochs", "2", "--out", str(model)]) == 0
    capsys.readouterr()
    new = pd.read_csv(small_csv).drop(columns="y").iloc[:3]
    new["x"] = ["1e30", "-1e300", "0.5"]
    new.to_csv(tmp_path / "huge.csv", index=False)
    out = tmp_path / "out.csv"
    with pytest.warns(skmm.InputWarning, match="standard deviations"):
        assert main(["predict", str(model), str(tmp_path / "huge.csv"), "--out", str(out)]) == 0
    got = pd.read_csv(out)
    assert len(got) == 3 and got["prediction"].isin(["p", "q"]).all()
    probabilities = got[["proba_p", "proba_q"]].to_numpy()
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    for value in ("inf", "-Infinity", "1e400"):
        new["x"] = ["0.5", value, "0.1"]
        new.to_csv(tmp_path / "inf.csv", index=False)
        assert main(["predict", str(model), str(tmp_path / "inf.csv")]) == 1
        err = capsys.readouterr().err
        assert "'x'" in err and "data row 2" in err and "finite number" in err


def start_fit(args, env_extra=None, code=None):
    import os

    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "skmm"]
    return subprocess.Popen([*command, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_for_line(stream, words, limit=400):
    seen = []
    for _ in range(limit):
        line = stream.readline()
        seen.append(line)
        if not line or words in line:
            return "".join(seen)
    return "".join(seen)


def test_ctrl_c_during_training_saves_nothing_and_exits_130(small_csv, tmp_path):
    import signal
    import time

    model = tmp_path / "m.skmm"
    model.write_bytes(b"the model I had")
    process = start_fit(["fit", small_csv, "--target", "y", "--override", "id=drop",
                         "--max-epochs", "1000000", "--out", model])
    out = wait_for_line(process.stdout, "tag")  # the kinds are printed: training comes next
    assert "Inferred column kinds" in out
    time.sleep(3)  # well into the million epochs
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted; nothing was saved" in err and "Traceback" not in err
    assert model.read_bytes() == b"the model I had"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skmm", "small.csv"]


INTERRUPT_IN_EXEC = """
import os, signal, sys
from skmm.cli import _Interrupted, _Signals
try:
    with _Signals():  # the signal lands inside code run by exec on a string
        exec("os.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(10 ** 9): pass")
except _Interrupted as exc:
    sys.exit(128 + exc.signum)
"""


def test_ctrl_c_inside_exec_string_still_exits_130_under_python_m(tmp_path):
    # a lazy import creating a dataclass runs exec on a string; CPython makes `python -m`
    # die by SIGINT when a plain KeyboardInterrupt leaves such code, whatever the exit status
    (tmp_path / "interrupt_in_exec.py").write_text(INTERRUPT_IN_EXEC)
    done = subprocess.run([sys.executable, "-m", "interrupt_in_exec"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr


SLOW_SAVE = """
import sys, time, skmm.persistence._save_load as p
real = p.os.replace
def slow_replace(*args):
    print("saving now", flush=True)
    time.sleep(60)
    real(*args)
p.os.replace = slow_replace
from skmm.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_saving_leaves_the_old_model_and_no_temporary_file(small_csv, tmp_path):
    import signal

    model = tmp_path / "m.skmm"
    model.write_bytes(b"the model I had")
    process = start_fit(["fit", small_csv, "--target", "y", "--override", "id=drop",
                         "--max-epochs", "1", "--out", model], code=SLOW_SAVE)
    assert "saving now" in wait_for_line(process.stdout, "saving now")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert model.read_bytes() == b"the model I had"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skmm", "small.csv"]


@pytest.mark.parametrize("command", ["predict", "export", "serve"])
def test_trust_is_offered_and_explained(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--trust" in text and "may run code" in text and "files you wrote or trust" in text


def test_trust_reaches_skmm_load(monkeypatch, small_csv, tmp_path, capsys):
    import skmm.persistence

    model = tmp_path / "m.skmm"
    assert main(["fit", str(small_csv), "--target", "y", "--override", "id=drop",
                 "--max-epochs", "1", "--out", str(model)]) == 0
    real_load, calls = skmm.persistence.load, []

    def load(path, *, trusted=False, return_metadata=False):
        calls.append(trusted)
        return real_load(path, return_metadata=return_metadata)

    monkeypatch.setattr(skmm.persistence, "load", load)
    assert main(["predict", str(model), str(small_csv)]) == 0
    assert main(["predict", str(model), str(small_csv), "--trust"]) == 0
    from skmm.serve import create_app

    create_app(model, warm_up=False)
    create_app(model, warm_up=False, trusted=True)
    assert calls == [False, True, False, True]


# --------------------------------------------------------------------------- CSV reading (issue 13)


def test_blank_lines_are_kept_and_only_empty_cells_are_missing(tmp_path):
    from skmm.cli import _read_csv

    path = tmp_path / "t.csv"
    path.write_text("name,x\nNA,1\n\nnull,2\nNone,\n,4\nnan,5\n")
    df, _ = _read_csv(path)
    assert len(df) == 6  # the blank line is row 1, so output rows line up with input lines
    assert df["name"].iloc[[0, 2, 3, 5]].tolist() == ["NA", "null", "None", "nan"]
    assert df["name"].iloc[[1, 4]].isna().all() and df["x"].iloc[[1, 3]].isna().all()


def test_predict_keeps_blank_lines_and_names_a_non_number(small_csv, tmp_path, capsys):
    model = tmp_path / "m.skmm"
    assert main(["fit", str(small_csv), "--target", "y", "--override", "id=drop",
                 "--max-epochs", "2", "--out", str(model)]) == 0
    lines = small_csv.read_text().splitlines()
    (tmp_path / "blank.csv").write_text("\n".join([lines[0], lines[1], "", lines[2]]) + "\n")
    out = tmp_path / "out.csv"
    assert main(["predict", str(model), str(tmp_path / "blank.csv"), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 3  # one output row per data line, the blank one included
    (tmp_path / "text.csv").write_text("\n".join([lines[0], lines[1], "", "abc,a,user1,p"]) + "\n")
    capsys.readouterr()
    assert main(["predict", str(model), str(tmp_path / "text.csv")]) == 1
    err = capsys.readouterr().err
    assert "column 'x', data row 3 (line 4): 'abc' is not a finite number" in err


def test_integer_labels_with_a_blank_stay_integers(small_csv, tmp_path, capsys):
    df = pd.read_csv(small_csv)
    df["y"] = [1, 2] * 6
    df.loc[4, "y"] = None
    df.to_csv(tmp_path / "ints.csv", index=False)
    model = tmp_path / "m.skmm"
    assert main(["fit", str(tmp_path / "ints.csv"), "--target", "y", "--override", "id=drop",
                 "--max-epochs", "2", "--out", str(model)]) == 0
    assert "Dropping 1 rows without a target" in capsys.readouterr().err
    assert skmm.persistence.read_metadata(model)["classes"] == [1, 2]
    out = tmp_path / "out.csv"
    assert main(["predict", str(model), str(small_csv), "--out", str(out)]) == 0
    assert list(pd.read_csv(out).columns) == ["prediction", "proba_1", "proba_2"]
    assert set(pd.read_csv(out, dtype=str)["prediction"]) <= {"1", "2"}


def test_on_error_option(fitted_model, tmp_path, capsys):
    root, _, _ = fitted_model
    new = pd.read_csv(root / "data" / "new.csv")
    new.loc[2, "photo"] = "images/no-such-file.png"
    new.to_csv(root / "data" / "broken.csv", index=False)
    assert main(["predict", str(root / "model.skmm"), str(root / "data" / "broken.csv")]) == 1
    err = capsys.readouterr().err
    assert "no-such-file.png" in err and "--on-error missing" in err
    out = tmp_path / "out.csv"
    with pytest.warns(skmm.InputWarning, match="1 of 6 rows"):
        assert main(["predict", str(root / "model.skmm"), str(root / "data" / "broken.csv"),
                     "--on-error", "missing", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 6


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"skmm {skmm.__version__}"


def test_fit_report_and_report_command_write_pages_with_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    y = np.array(["p", "q"] * 20)
    df = pd.DataFrame({"x": rng.normal(size=40) + 2 * (y == "q"), "tag": ["a", "b"] * 20, "y": y})
    df.to_csv(tmp_path / "train.csv", index=False)
    model, page = tmp_path / "m.skmm", tmp_path / "fit.html"
    assert main(["fit", str(tmp_path / "train.csv"), "--target", "y", "--max-epochs", "3",
                 "--out", str(model), "--report", str(page)]) == 0
    assert f"Report written to {page}" in capsys.readouterr().out
    assert page.read_text().count("data:image/png;base64,") >= 2

    again = tmp_path / "report.html"
    assert main(["report", str(model), str(tmp_path / "train.csv"), "--target", "y",
                 "--out", str(again)]) == 0
    assert "Report on 40 rows" in capsys.readouterr().out
    html = again.read_text()
    assert "data:image/png;base64," in html and "confusion" in html.lower()
    assert main(["report", str(model), str(tmp_path / "train.csv"), "--target", "nope"]) == 1
    assert "--target 'nope' is not a column" in capsys.readouterr().err


def test_skmm_serve_help_shows_the_defaults_the_server_really_uses(monkeypatch, capsys):
    # skmm.serve._limits holds them once; --help, `skmm serve MODEL`, serve(), create_app() and
    # their docstrings must all say and use the same values
    import inspect
    import re

    import skmm.serve
    from skmm.serve import _limits, create_app, serve

    defaults = {name: p.default for name, p in inspect.signature(serve).parameters.items()
                if p.default is not inspect.Parameter.empty}
    app_defaults = {name: p.default for name, p in inspect.signature(create_app).parameters.items()
                    if p.default is not inspect.Parameter.empty}
    assert {name: app_defaults[name] for name in app_defaults.keys() & defaults.keys()} == \
        {name: defaults[name] for name in app_defaults.keys() & defaults.keys()}
    assert defaults["max_rows"] == _limits.DEFAULT_MAX_ROWS and defaults["port"] == _limits.DEFAULT_PORT

    seen = {}
    monkeypatch.setattr(skmm.serve, "serve", lambda path, **options: seen.update(options))
    assert main(["serve", "model.skmm"]) == 0  # no option: exactly serve()'s own defaults
    assert seen == defaults

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    options = {"host": "--host", "port": "--port", "threads": "--threads", "max_rows": "--max-rows",
               "max_text_chars": "--max-text-chars", "connection_limit": "--connection-limit",
               "channel_timeout": "--channel-timeout", "max_batch_rows": "--max-batch-rows",
               "max_wait_ms": "--max-wait-ms", "queue_size": "--queue-size",
               "request_timeout": "--request-timeout", "max_body_bytes": "--max-body-mb"}
    for name, option in options.items():
        said = re.search(rf"{option} \S+ [^(]*\(default: ([^)]+)\)", shown).group(1)
        if name == "host":
            assert said == defaults[name]
        else:
            scale = 1024**2 if name == "max_body_bytes" else 1
            assert float(said) * scale == defaults[name], option
    assert re.search(rf"--workers N [^(]*\(default: one per CPU, at most {_limits.MAX_DEFAULT_WORKERS}\)", shown)
    assert defaults["workers"] is None

    # each docstring value is the signature's (stated once: serve's docstring sends to create_app's)
    stated = {}
    for function in (create_app, serve):
        for name, value in re.findall(r"^ {4}(\w+) : [^\n]*default=([^\n]+)$", function.__doc__, re.M):
            assert name not in stated or stated[name] == value, name
            stated[name] = value
    assert {"max_rows", "max_body_bytes", "workers", "port", "connection_limit"} <= set(stated)
    for name, value in stated.items():
        if value.endswith(" MiB"):
            value = str(int(value[:-4]) * 1024**2)
        assert eval(value) == defaults.get(name, app_defaults.get(name)), name  # noqa: S307


def test_model_option_sets_each_text_column_s_model(tiny_text_model, tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.array(["a", "b"] * 12)
    pd.DataFrame({
        "note": [f"{'sunny' if v == 'a' else 'rainy'} weather on day number {i}" for i, v in enumerate(labels)],
        "title": [f"{'bright' if v == 'a' else 'grey'} sky and wind {i}" for i, v in enumerate(labels)],
        "x": rng.normal(size=24),
        "y": labels,
    }).to_csv(tmp_path / "texts.csv", index=False)
    model = tmp_path / "m.skmm"
    assert main(["fit", str(tmp_path / "texts.csv"), "--target", "y", "--max-epochs", "2",
                 "--model", f"text={tiny_text_model}", "--out", str(model)]) == 0
    encoders = {name: step for name, step, _ in skmm.load(model).named_steps["fusion"].transformers_}
    assert encoders["note"].model == encoders["title"].model == str(tiny_text_model)

    assert main(["fit", str(tmp_path / "texts.csv"), "--target", "y", "--max-epochs", "2",
                 "--model", f"title={tiny_text_model}", "--out", str(model)]) == 0
    encoders = {name: step for name, step, _ in skmm.load(model).named_steps["fusion"].transformers_}
    assert encoders["title"].model == str(tiny_text_model) and encoders["note"].model != str(tiny_text_model)
    capsys.readouterr()

    for option, message in [("x=some/model", "takes no model"), ("nowhere=some/model", "'nowhere' is neither"),
                            ("text", "expected KIND=MODEL")]:
        assert main(["fit", str(tmp_path / "texts.csv"), "--target", "y", "--model", option,
                     "--out", str(model)]) == 1
        assert message in capsys.readouterr().err


def test_fit_fine_tunes_the_chosen_columns_and_runs_their_frozen_blocks_once(tiny_text_model, tmp_path, capsys):
    """--fine-tune trains the named column's backbone in each fold and in the final fit; the rows
    run through its frozen blocks once, before the folds, and never through the whole frozen model."""
    from skmm.cache import clear_memory_cache
    from skmm.encoders._text import TextEncoder

    clear_memory_cache()
    labels = np.array(["a", "b"] * 12)
    pd.DataFrame({
        "note": [f"{'snow' if v == 'a' else 'cloud'} in week {i}" for i, v in enumerate(labels)],
        "title": [f"title {i}" for i in range(24)],
        "x": np.arange(24.0),
        "y": labels,
    }).to_csv(tmp_path / "train.csv", index=False)
    trunk_rows, whole_rows = [], []
    trunk_batch, encode_batch = TextEncoder._trunk_batch, TextEncoder._encode_batch

    def counting_trunk(self, items, bundle, cut):
        trunk_rows.extend(items)
        return trunk_batch(self, items, bundle, cut)

    def counting_whole(self, items, bundle):
        whole_rows.extend(items)
        return encode_batch(self, items, bundle)

    model = tmp_path / "m.skmm"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TextEncoder, "_trunk_batch", counting_trunk)
        patch.setattr(TextEncoder, "_encode_batch", counting_whole)
        assert main(["fit", str(tmp_path / "train.csv"), "--target", "y", "--max-epochs", "2", "--cv", "2",
                     "--no-cache", "--model", f"text={tiny_text_model}", "--fine-tune", "note=top",
                     "--out", str(model)]) == 0
    notes = [f"{'snow' if v == 'a' else 'cloud'} in week {i}" for i, v in enumerate(labels)]
    assert sorted(trunk_rows) == sorted(notes)  # each note once, folds and final fit included
    # the whole frozen model saw only the two rows on which the frozen blocks' first pass and each of the
    # three fits check the split
    assert len([row for row in whole_rows if row in notes]) <= 4 * 2
    encoders = {name: step for name, step, _ in skmm.load(model).named_steps["fusion"].transformers_}
    assert encoders["note"].fine_tune == "top" and hasattr(encoders["note"], "fine_tuned_")
    assert encoders["title"].fine_tune is None and not hasattr(encoders["title"], "fine_tuned_")
    capsys.readouterr()

    for option, message in [("note=full", "expected a mode among top, lora, found 'full'"),
                            ("x=top", "takes no fine_tune"), ("nowhere=top", "'nowhere' is neither"),
                            ("text", "expected KIND=MODE")]:
        assert main(["fit", str(tmp_path / "train.csv"), "--target", "y", "--fine-tune", option,
                     "--out", str(model)]) == 1
        assert message in capsys.readouterr().err


def test_an_audio_column_given_a_model_gets_a_pretrained_encoder_that_can_fine_tune(tmp_path, capsys):
    """AudioMFCC has no model: --model audio=... gives the column an AudioEncoder, which --fine-tune trains."""
    from tiny_models import save_tiny_wav2vec2

    from skmm import AudioEncoder

    write_dataset(tmp_path / "data")[["voice", "label"]].to_csv(tmp_path / "data" / "voices.csv", index=False)
    speech_model = save_tiny_wav2vec2(tmp_path / "wav2vec2", attention_mask=True)
    model = tmp_path / "m.skmm"
    assert main(["fit", str(tmp_path / "data" / "voices.csv"), "--target", "label", "--max-epochs", "2",
                 "--model", f"audio={speech_model}", "--fine-tune", "voice=top", "--out", str(model)]) == 0
    encoder = skmm.load(model).named_steps["fusion"].named_transformers_["voice"]
    assert isinstance(encoder, AudioEncoder) and encoder.model == str(speech_model)
    assert encoder.fine_tune == "top" and hasattr(encoder, "fine_tuned_")
    capsys.readouterr()


def test_help_states_the_classifier_s_own_defaults(capsys):
    from skmm import MultimodalClassifier

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"training epochs of the network (default: {MultimodalClassifier().max_epochs})" in help_text


@pytest.fixture
def encoded_texts(monkeypatch):
    """Every text handed to TextEncoder's model, in order (the test's count of encodings)."""
    from skmm.encoders._text import TextEncoder

    encoded = []
    original = TextEncoder._encode_batch

    def counting(self, items, bundle):
        encoded.extend(items)
        return original(self, items, bundle)

    monkeypatch.setattr(TextEncoder, "_encode_batch", counting)
    return encoded


def test_a_second_command_on_the_same_rows_encodes_nothing(tiny_text_model, tmp_path, encoded_texts, capsys):
    """Embeddings are kept on disk between commands (here --cache DIR); --no-cache encodes again."""
    from skmm.cache import clear_memory_cache

    encoded = encoded_texts
    before = os.environ.get("SKMM_CACHE_DIR")
    labels = np.array(["a", "b"] * 10)
    frame = pd.DataFrame({"note": [f"{'sun' if v == 'a' else 'rain'} on day {i}" for i, v in enumerate(labels)],
                          "y": labels})
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.drop(columns="y").to_csv(tmp_path / "new.csv", index=False)
    cache, model = tmp_path / "embeddings", tmp_path / "m.skmm"
    assert main(["fit", str(tmp_path / "train.csv"), "--target", "y", "--max-epochs", "2", "--cache", str(cache),
                 "--model", f"text={tiny_text_model}", "--out", str(model)]) == 0
    assert len(encoded) == 20 and f"embeddings are cached in {cache}" in capsys.readouterr().err
    for command in (["predict", str(model), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")],
                    ["report", str(model), str(tmp_path / "train.csv"), "--target", "y",
                     "--out", str(tmp_path / "r.html")]):
        if command[0] == "report":
            pytest.importorskip("matplotlib")
        clear_memory_cache()  # as a new process: only the disk remembers
        encoded.clear()
        assert main([*command, "--cache", str(cache)]) == 0
        assert encoded == [], command[0]
    clear_memory_cache()
    assert main(["predict", str(model), str(tmp_path / "new.csv"), "--no-cache", "--out", str(tmp_path / "p.csv")]) == 0
    assert len(encoded) == 20 and "kept in memory only" in capsys.readouterr().err
    assert os.environ.get("SKMM_CACHE_DIR") == before  # each command's setting ends with it


def test_fit_with_cv_encodes_each_row_once_before_the_folds(tiny_text_model, tmp_path, encoded_texts, capsys):
    """The folds and the final fit reuse one encoding of every row, so the first fold's
    "time left" is not inflated by encoding the whole table."""
    from skmm.cache import clear_memory_cache

    encoded = encoded_texts
    clear_memory_cache()
    labels = np.array(["a", "b"] * 12)
    pd.DataFrame({"note": [f"{'snow' if v == 'a' else 'cloud'} in week {i}" for i, v in enumerate(labels)],
                  "y": labels}).to_csv(tmp_path / "train.csv", index=False)
    assert main(["fit", str(tmp_path / "train.csv"), "--target", "y", "--max-epochs", "2", "--cv", "3",
                 "--no-cache", "--model", f"text={tiny_text_model}", "--out", str(tmp_path / "m.skmm")]) == 0
    assert sorted(encoded) == sorted(set(encoded)) and len(encoded) == 24  # each row once in all
    err = capsys.readouterr().err
    assert err.index("Encoding the 24 rows once") < err.index("fold 1/3: accuracy") < err.index("Fitting on all 24 rows")
