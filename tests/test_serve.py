"""The HTTP API, through a real ``python -m skmm serve`` process on loopback."""

import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("flask")
pytest.importorskip("waitress")

from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

import skmm  # noqa: E402
from skmm import MultimodalClassifier, infer_modalities  # noqa: E402

MAX_BODY_MB = 1


# --------------------------------------------------------------------------- data and model


def png_bytes(rgb, seed, size=16):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header(width, height):
    """A PNG whose header claims ``width x height`` pixels, with no pixel data."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def make_frame(n=24, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["cat", "dog"] * (n // 2))
    rows = []
    for i, label in enumerate(labels):
        cat = label == "cat"
        rows.append({
            "photo": png_bytes((220, 40, 40) if cat else (40, 80, 220), seed=i),
            "review": (
                "the kitten purred on the sofa" if cat else "the puppy barked at the postman"
            ) + f" number {i}",
            "price": float(rng.normal(1.0 if cat else -1.0, 0.5)) if i % 7 else np.nan,
            "colour": ["red", "blue", "green"][i % 3],
        })
    return pd.DataFrame(rows), labels


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    X, y = make_frame()
    fusion = infer_modalities(X, overrides={"review": TfidfVectorizer()})
    pipe = Pipeline([
        ("fusion", fusion),
        ("clf", MultimodalClassifier(max_epochs=5, random_state=0, device="cpu")),
    ]).fit(X, y)
    path = skmm.save(pipe, tmp_path_factory.mktemp("model") / "model.skmm")
    return path, pipe, X


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, model_path, tmp_path, threads=8):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp_path / "server.log", "w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "skmm", "serve", str(model_path), "--port", str(self.port),
             "--threads", str(threads), "--max-body-mb", str(MAX_BODY_MB)],
            stdout=self.log, stderr=subprocess.STDOUT,
            cwd=tmp_path,  # a relative path in a request must not resolve here either
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            try:
                status, body = self.request("GET", "/health")
                if status == 200 and body == {"status": "ok"}:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer /health in time: {self.output()}")

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def request(self, method, route, body=None, headers=None, timeout=60):
        request = urllib.request.Request(
            self.url + route, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def post_json(self, payload):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request("POST", "/predict", data, {"Content-Type": "application/json"})

    def post_form(self, fields, files):
        body, content_type = encode_multipart(fields, files)
        return self.request("POST", "/predict", body, {"Content-Type": content_type})

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def encode_multipart(fields, files):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    running = Server(model[0], tmp_path_factory.mktemp("server"))
    yield running
    running.stop()


def as_json_row(row):
    out = {}
    for column, value in row.items():
        if isinstance(value, bytes):
            out[column] = base64.b64encode(value).decode()
        elif isinstance(value, float) and np.isnan(value):
            out[column] = None
        else:
            out[column] = value
    return out


def expected(pipe, frame):
    return pipe.predict(frame), pipe.predict_proba(frame)


def assert_same(predictions, labels, probabilities, classes):
    assert len(predictions) == len(labels)
    for answer, label, row in zip(predictions, labels, probabilities):
        assert answer["label"] == label
        assert list(answer["probabilities"]) == [str(c) for c in classes]
        np.testing.assert_allclose(list(answer["probabilities"].values()), row, atol=1e-5)


# --------------------------------------------------------------------------- routes


def test_health_and_metadata(server, model):
    path, pipe, X = model
    assert server.request("GET", "/health") == (200, {"status": "ok"})
    status, meta = server.request("GET", "/metadata")
    assert status == 200
    assert meta["input_columns"] == list(X.columns)
    assert meta["kinds"] == {
        "photo": "image", "review": "text", "price": "numeric", "colour": "categorical"
    }
    assert meta["classes"] == ["cat", "dog"]
    assert meta["model"] == "model.skmm"  # the file name only: where it lives is not shown
    assert str(path.parent) not in json.dumps(meta)
    assert meta["versions"]["skmm"] == skmm.__version__
    assert {"scikit-learn", "torch"} <= set(meta["versions"])


def test_json_rows_match_in_process_predictions(server, model):
    _, pipe, X = model
    rows = [as_json_row(r) for r in X.to_dict("records")]
    status, body = server.post_json({"rows": rows})
    assert status == 200, body
    assert_same(body["predictions"], *expected(pipe, X), pipe.classes_)


def test_json_single_row_and_missing_values(server, model):
    _, pipe, X = model
    row = X.iloc[[3]].copy()
    row["price"] = np.nan
    row["colour"] = None
    status, body = server.post_json({"row": as_json_row(row.iloc[0].to_dict())})
    assert status == 200, body
    assert_same(body["predictions"], *expected(pipe, row), pipe.classes_)


def test_multipart_row_matches_in_process_prediction(server, model):
    _, pipe, X = model
    row = X.iloc[[5]]
    fields = {"review": row["review"].iloc[0], "price": str(float(row["price"].iloc[0])),
              "colour": row["colour"].iloc[0]}
    status, body = server.post_form(fields, {"photo": ("cat.png", row["photo"].iloc[0])})
    assert status == 200, body
    assert_same(body["predictions"], *expected(pipe, row), pipe.classes_)


def test_http_error_pages_are_json(server):
    status, body = server.request("GET", "/nope")
    assert status == 404 and "error" in body
    status, body = server.request("GET", "/predict")
    assert status == 405 and "error" in body


# --------------------------------------------------------------------------- bad requests


def good_row(X, i=0):
    return as_json_row(X.iloc[i].to_dict())


@pytest.mark.parametrize(
    "make_body, status, words",
    [
        (lambda X: b'{"rows": [', 400, ["malformed JSON"]),
        (lambda X: b"[1, 2]", 400, ['"rows"']),
        (lambda X: {"rowz": []}, 400, ['"rows"', "rowz"]),
        (lambda X: {"rows": []}, 400, ['"rows"']),
        (lambda X: {"rows": [1]}, 400, ["rows[0]"]),
        (lambda X: {"row": {**good_row(X), "age": 3}}, 400, ["'age'", "expected columns", "'photo'"]),
        (lambda X: {"row": {k: v for k, v in good_row(X).items() if k != "price"}}, 422,
         ["'price'", "expected columns"]),
        (lambda X: {"rows": [good_row(X), {**good_row(X), "photo": "@@not base64@@"}]}, 422,
         ["'photo'", "row 1", "base64"]),
        (lambda X: {"row": {**good_row(X), "photo": base64.b64encode(b"plain text").decode()}},
         422, ["'photo'", "row 0", "not a readable image"]),
        (lambda X: {"row": {**good_row(X), "photo": 12}}, 422, ["'photo'", "base64"]),
        (lambda X: {"row": {**good_row(X), "photo": base64.b64encode(png_header(20000, 20000)).decode()}},
         422, ["'photo'", "row 0"]),
        (lambda X: {"row": {**good_row(X), "photo": base64.b64encode(png_header(10000, 9000)).decode()}},
         422, ["ImageEncoder", "row 0", "max_pixels"]),
        (lambda X: {"row": {**good_row(X), "price": "cheap"}}, 422, ["'price'", "number"]),
        (lambda X: {"row": {**good_row(X), "review": {"nested": 1}}}, 422, ["'review'"]),
    ],
    ids=["malformed", "not-object", "no-rows", "empty-rows", "row-not-object", "unknown-column",
         "missing-column", "bad-base64", "not-an-image", "image-not-string", "bomb-header",
         "over-max-pixels", "bad-number",
         "bad-text"],
)
def test_bad_json_requests(server, model, make_body, status, words):
    body = make_body(model[2])
    got, answer = server.post_json(body)
    assert got == status, answer
    assert set(answer) == {"error"}
    for word in words:
        assert word in answer["error"]


def test_bad_multipart_requests(server, model):
    X = model[2]
    fields = {"review": "a cat", "price": "1.5", "colour": "red"}
    photo = {"photo": ("x.png", X["photo"].iloc[0])}
    status, answer = server.post_form({**fields, "price": "abc"}, photo)
    assert status == 422 and "'price'" in answer["error"]
    status, answer = server.post_form(fields, {"photo": ("x.png", b"GIF89a broken")})
    assert status == 422 and "'photo'" in answer["error"] and "row 0" in answer["error"]
    status, answer = server.post_form({**fields, "shoe_size": "9"}, photo)
    assert status == 400 and "'shoe_size'" in answer["error"] and "'photo'" in answer["error"]
    status, answer = server.post_form(fields, {**photo, "price": ("p.txt", b"1.0")})
    assert status == 422 and "'price'" in answer["error"]
    status, answer = server.post_form({k: v for k, v in fields.items() if k != "colour"}, photo)
    assert status == 422 and "'colour'" in answer["error"]


def test_wrong_content_type(server):
    status, answer = server.request("POST", "/predict", b"photo=1", {"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in answer["error"]


def test_body_over_the_limit(server, model):
    row = good_row(model[2])
    row["photo"] = base64.b64encode(os.urandom(MAX_BODY_MB * 1024**2)).decode()
    status, answer = server.post_json({"row": row})
    assert status == 413
    assert str(MAX_BODY_MB * 1024**2) in answer["error"]


def test_a_path_is_never_read(server, model, tmp_path):
    X = model[2]
    # a real, valid PNG on the server's disk, under a name that is valid base64 too
    image_path = tmp_path / "abcd"
    image_path.write_bytes(X["photo"].iloc[0])
    for value in (str(image_path), os.fspath(image_path.relative_to(tmp_path)), "file://" + str(image_path)):
        status, answer = server.post_json({"row": {**good_row(X), "photo": value}})
        assert status == 422, (value, answer)
        assert "'photo'" in answer["error"]


# --------------------------------------------------------------------------- concurrency


def test_concurrent_requests_all_answered_right(server, model):
    _, pipe, X = model
    labels, probabilities = expected(pipe, X)
    rows = [as_json_row(r) for r in X.to_dict("records")]
    n_threads, per_thread = 8, 25
    failures, done = [], []

    def worker(seed):
        rng = np.random.default_rng(seed)
        for _ in range(per_thread):
            i = int(rng.integers(len(rows)))
            try:
                status, body = server.post_json({"row": rows[i]})
                assert status == 200, body
                assert_same(body["predictions"], labels[[i]], probabilities[[i]], pipe.classes_)
                done.append(i)
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                failures.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # every request has its own timeout: the threads end
    assert not failures, failures[:3]
    assert len(done) == n_threads * per_thread


# --------------------------------------------------------------------------- hardening (issue 13)


_APPS = []  # every in-process app, so that its inference workers are stopped after the test


def in_process_app(pipe, **options):
    from skmm.serve import create_app

    app = create_app(pipe, warm_up=False, **options)
    _APPS.append(app)
    return app.test_client()


@pytest.fixture(autouse=True)
def stop_inference_workers():
    yield
    while _APPS:
        batcher = _APPS.pop().config["SKMM_BATCHER"]
        batcher.close()
        assert not batcher.running


@pytest.fixture(scope="module")
def wrapped_image_model(model):
    """The photo column read by a FeatureUnion of two ImageEncoders: no top-level skmm encoder."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion
    from sklearn.preprocessing import StandardScaler

    from skmm import ImageEncoder

    _, _, X = model
    X = X[["photo", "price"]].fillna(0.0)
    union = FeatureUnion([
        ("small", ImageEncoder(image_size=32, verbose=0)),
        ("large", Pipeline([("enc", ImageEncoder(image_size=48, verbose=0)),
                            ("scale", StandardScaler())])),
    ])
    columns = ColumnTransformer([("photo", union, "photo"), ("price", StandardScaler(), ["price"])])
    from sklearn.linear_model import LogisticRegression

    pipe = Pipeline([("fusion", columns), ("clf", LogisticRegression(max_iter=200))])
    return pipe.fit(X, ["cat", "dog"] * (len(X) // 2)), X


def test_a_wrapped_image_column_is_an_upload_and_no_path_is_read(wrapped_image_model, tmp_path):
    pipe, X = wrapped_image_model
    secret = tmp_path / "abcd"  # a real PNG on the server's disk, its name valid base64 too
    secret.write_bytes(X["photo"].iloc[0])
    client = in_process_app(pipe)
    assert client.get("/metadata").get_json()["kinds"]["photo"] == "image"
    for value in (str(secret), "abcd", "file://" + str(secret)):
        answer = client.post("/predict", json={"row": {"photo": value, "price": 1.0}})
        assert answer.status_code == 422, answer.get_json()
        assert "'photo'" in answer.get_json()["error"]
        assert "PNG" not in answer.get_json()["error"]  # no byte of the file is quoted back
    good = base64.b64encode(X["photo"].iloc[0]).decode()
    answer = client.post("/predict", json={"row": {"photo": good, "price": 1.0}})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["predictions"][0]["label"] == pipe.predict(X.iloc[[0]])[0]


def test_metadata_saying_text_does_not_make_a_file_column_take_paths(wrapped_image_model, tmp_path):
    from skmm.serve import RowDecoder, _served_kinds

    pipe, _ = wrapped_image_model
    kinds = _served_kinds(pipe, {"photo": "text", "price": "numeric"})  # stale or forged metadata
    assert kinds["photo"] == "image"
    decoder = RowDecoder(["photo", "price"], kinds)
    with pytest.raises(Exception, match="base64"):
        decoder.frame([{"photo": str(tmp_path / "x.png"), "price": 1.0}])


def test_no_path_is_opened_while_a_request_is_predicted(tmp_path):
    from skmm import ImageEncoder, InputError
    from skmm.io import paths_refused

    image = tmp_path / "a.png"
    image.write_bytes(png_bytes((10, 20, 30), seed=0))
    encoder = ImageEncoder(image_size=32, verbose=0).fit([str(image)])
    with paths_refused(), pytest.raises(InputError, match="never opens paths"):
        encoder.transform([str(image)])
    assert encoder.transform([str(image)]).shape == (1, 1280)  # outside the block, paths work


@pytest.mark.parametrize("price", [1e30, -1e30, 1e300, 1.7e308, "1e30"])
def test_a_huge_finite_number_gives_finite_probabilities(model, price):
    _, pipe, X = model
    client = in_process_app(pipe)
    with pytest.warns(skmm.InputWarning, match="standard deviations"):
        answer = client.post("/predict", json={"row": {**good_row(X), "price": price}})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = json.loads(answer.get_data(as_text=True))  # strict JSON: no NaN
    probabilities = list(body["predictions"][0]["probabilities"].values())
    assert np.isfinite(probabilities).all()
    assert sum(probabilities) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "body",
    [
        '{"row": {ROW, "price": Infinity}}',
        '{"row": {ROW, "price": -Infinity}}',
        '{"row": {ROW, "price": 1e400}}',
        '{"row": {ROW, "price": "inf"}}',
        '{"row": {ROW, "price": "-Infinity"}}',
        '{"row": {ROW, "price": ' + "9" * 400 + "}}",
        '{"row": {ROW, "colour": ' + "9" * 400 + "}}",
        '{"row": {ROW, "colour": 1e400}}',
        '{"row": {ROW, "price": ' + "9" * 5000 + "}}",
        "[" * 100_000 + "]" * 100_000,
        '{"rows": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
    ids=["Infinity", "-Infinity", "1e400", "inf-string", "-Infinity-string", "400-digits",
         "400-digits-category", "1e400-category", "5000-digits", "nested", "nested-rows"],
)
def test_out_of_range_numbers_and_deep_json_are_refused_not_500(model, body):
    _, pipe, X = model
    row = {k: v for k, v in good_row(X).items() if k not in ("price", "colour")}
    row_text = json.dumps(row)[1:-1]
    extra = '"colour": "red"' if '"colour"' not in body else '"price": 1.0'
    answer = in_process_app(pipe).post(
        "/predict", data=body.replace("ROW", row_text + ", " + extra),
        content_type="application/json",
    )
    assert answer.status_code in (400, 422), answer.get_data(as_text=True)[:300]
    error = answer.get_json()["error"]
    assert "Traceback" not in error
    if "ROW" in body:
        assert any(word in error for word in ("'price'", "'colour'", "JSON")), error


@pytest.mark.parametrize("width", [20_000, 2_000_000])
def test_an_absurdly_long_image_is_a_422_not_a_500(model, width):
    _, pipe, X = model
    buffer = io.BytesIO()
    Image.new("L", (width, 1)).save(buffer, format="PNG")
    photo = base64.b64encode(buffer.getvalue()).decode()
    answer = in_process_app(pipe).post("/predict", json={"row": {**good_row(X), "photo": photo}})
    assert answer.status_code == 422
    assert "'photo'" in answer.get_json()["error"] and "aspect ratio" in answer.get_json()["error"]


def test_slow_and_idle_clients_do_not_starve_the_server(server):
    slow = []
    try:
        for _ in range(150):  # more than waitress's own default connection limit (100)
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
            slow.append(sock)
        for sock in slow[::10]:
            sock.sendall(b"X-Slow: 1\r\n")
        assert server.request("GET", "/health", timeout=20) == (200, {"status": "ok"})
    finally:
        for sock in slow:
            sock.close()


def test_rows_per_request_and_text_length_are_limited(model):
    _, pipe, X = model
    client = in_process_app(pipe, max_rows=3, max_text_chars=50)
    answer = client.post("/predict", json={"rows": [good_row(X)] * 4})
    assert answer.status_code == 413
    assert '"rows"' in answer.get_json()["error"] and "--max-rows" in answer.get_json()["error"]
    assert client.post("/predict", json={"rows": [good_row(X)] * 3}).status_code == 200
    answer = client.post("/predict", json={"row": {**good_row(X), "review": "word " * 11}})
    assert answer.status_code == 422
    assert "'review'" in answer.get_json()["error"] and "--max-text-chars" in answer.get_json()["error"]


def test_skmm_serve_passes_its_limits_and_trust_to_waitress(monkeypatch, model):
    import waitress

    from skmm.cli import main

    seen = {}
    monkeypatch.setattr(waitress, "serve", lambda app, **options: seen.update(options))
    assert main(["serve", str(model[0]), "--max-rows", "7", "--max-text-chars", "9",
                 "--connection-limit", "11", "--channel-timeout", "13"]) == 0
    assert seen["connection_limit"] == 11 and seen["channel_timeout"] == 13
    assert seen["asyncore_use_poll"] is True
    assert main(["serve", str(model[0]), "--max-rows", "0"]) == 1


def test_an_empty_multipart_field_is_null(model):
    _, pipe, X = model
    client = in_process_app(pipe)
    row = X.iloc[[1]].copy()
    row["price"] = np.nan
    row["review"] = ""  # what an empty text is to this model's TfidfVectorizer
    fields = {"review": "", "price": "", "colour": row["colour"].iloc[0]}
    body, content_type = encode_multipart(fields, {"photo": ("x.png", row["photo"].iloc[0])})
    answer = client.post("/predict", data=body, content_type=content_type)
    assert answer.status_code == 200, answer.get_json()
    assert_same(answer.get_json()["predictions"], *expected(pipe, row), pipe.classes_)
    body, content_type = encode_multipart({**fields, "photo": ""}, {})  # an empty photo too
    answer = client.post("/predict", data=body, content_type=content_type)
    assert answer.status_code == 200, answer.get_json()
    row["photo"] = None
    assert_same(answer.get_json()["predictions"], *expected(pipe, row), pipe.classes_)


def test_explain_adds_each_rows_modality_contributions(model):
    pytest.importorskip("shap")
    X, y = make_frame()
    X = X[["price", "colour"]]
    pipe = Pipeline([("fusion", infer_modalities(X)),
                     ("clf", MultimodalClassifier(max_epochs=5, random_state=0))]).fit(X, y)
    client = in_process_app(pipe)
    rows = [good_row(X), {**good_row(X), "price": None}]
    plain = client.post("/predict", json={"rows": rows}).get_json()["predictions"]
    answer = client.post("/predict?explain=true", json={"rows": rows})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    explained = answer.get_json()["predictions"]
    modalities = set(pipe.named_steps["fusion"].modalities_)
    for before, after in zip(plain, explained):
        assert after["label"] == before["label"]
        assert set(after["contributions"]) == modalities
    # the contributions add up to the predicted probability minus the all-absent baseline
    from skmm.inspection import make_absent

    classes = list(pipe.classes_)
    frame = pd.DataFrame([X.iloc[0]])
    predicted = classes.index(explained[0]["label"])
    full = pipe.predict_proba(frame)[0, predicted]
    with pytest.warns(skmm.InputWarning):
        baseline = pipe.predict_proba(make_absent(frame, list(X.columns)))[0, predicted]
    assert sum(explained[0]["contributions"].values()) == pytest.approx(full - baseline, abs=1e-4)


def test_explain_without_shap_is_a_501_naming_the_extra(model, monkeypatch):
    import skmm.inspection

    def missing(*args, **kwargs):
        raise ImportError('modality contributions need shap: pip install "skmm[explain]"')

    monkeypatch.setattr(skmm.inspection, "modality_contributions", missing)
    _, pipe, X = model
    answer = in_process_app(pipe).post("/predict?explain=1", json={"row": good_row(X)})
    assert answer.status_code == 501 and "skmm[explain]" in answer.get_json()["error"]


def test_explain_makes_a_modality_absent_after_its_transformer(model):
    """A TfidfVectorizer cannot take a missing review, but its fused block can be absent (NaN)."""
    pytest.importorskip("shap")
    _, pipe, X = model
    answer = in_process_app(pipe).post("/predict?explain=true", json={"row": good_row(X)})
    assert answer.status_code == 200, answer.get_json()
    contributions = answer.get_json()["predictions"][0]["contributions"]
    assert set(contributions) == {name for name, _, _ in pipe.named_steps["fusion"].transformers_} - {"remainder"}


def test_explain_on_a_model_that_cannot_make_a_modality_absent_is_a_501(model):
    pytest.importorskip("shap")
    from sklearn.linear_model import LogisticRegression

    _, pipe, X = model
    y = pipe.predict(X)
    plain = Pipeline([("fusion", infer_modalities(X, overrides={"review": TfidfVectorizer()})),
                      ("clf", LogisticRegression())]).fit(X, y)  # NaN, an absent block, is an error to it
    answer = in_process_app(plain).post("/predict?explain=true", json={"row": good_row(X)})
    assert answer.status_code == 501 and "accept missing values" in answer.get_json()["error"]


# --------------------------------------------------------------------------- micro-batching (issue 14)


def gate_predictions(client):
    """Make the app's first batch wait for the returned Event, so that requests queue behind it
    (an app with one inference worker: a second would take them).

    Returns the gate, an Event set once the first batch is waiting, and the list of the row
    counts of every batch predicted.
    """
    batcher = client.application.config["SKMM_BATCHER"]
    predict, gate, started, batches = batcher.predict, threading.Event(), threading.Event(), []

    def gated(frame):
        batches.append(len(frame))
        if len(batches) == 1:
            started.set()
            assert gate.wait(60)
        return predict(frame)

    batcher.predict = gated
    return gate, started, batches


def post_in_thread(client, body, answers, key):
    def run():
        answer = client.application.test_client().post("/predict", json=body)
        answers[key] = (answer.status_code, answer.get_json(), answer.headers)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def queue_behind_a_first_request(client, X, bodies):
    """Post a first row, hold its batch, queue ``bodies`` behind it, then let them all run."""
    gate, started, batches = gate_predictions(client)
    batcher = client.application.config["SKMM_BATCHER"]
    answers = {}
    threads = [post_in_thread(client, {"row": good_row(X, 0)}, answers, "first")]
    assert started.wait(60)
    threads += [post_in_thread(client, body, answers, key) for key, body in bodies.items()]
    deadline = time.monotonic() + 60
    while batcher._queue.qsize() < len(bodies):
        assert time.monotonic() < deadline, "the requests never queued"
        time.sleep(0.01)
    gate.set()
    for thread in threads:
        thread.join(60)
    return answers, batches


def test_requests_batched_together_each_get_exactly_their_own_rows(model):
    _, pipe, X = model
    client = in_process_app(pipe, max_wait_ms=50, workers=1)
    picks = {"a": [3], "b": [5, 1, 8], "c": [2], "d": [7, 4]}
    bodies = {key: {"rows": [good_row(X, i) for i in rows]} for key, rows in picks.items()}
    answers, batches = queue_behind_a_first_request(client, X, bodies)
    assert batches == [1, 7]  # the held row, then the four requests' seven rows as one batch
    for key, rows in picks.items():
        status, body, _ = answers[key]
        assert status == 200, body
        assert_same(body["predictions"], *expected(pipe, X.iloc[rows]), pipe.classes_)


def test_a_bad_row_does_not_fail_the_requests_batched_with_it(model):
    _, pipe, X = model
    client = in_process_app(pipe, max_wait_ms=50, workers=1)
    broken = X["photo"].iloc[0][:60]  # a PNG header that passes the upload check, no pixels
    bodies = {
        "good": {"rows": [good_row(X, 1), good_row(X, 2)]},
        "bad": {"rows": [good_row(X, 3), {**good_row(X, 4),
                                          "photo": base64.b64encode(broken).decode()}]},
        "also_good": {"row": good_row(X, 5)},
    }
    answers, batches = queue_behind_a_first_request(client, X, bodies)
    assert batches[1] == 5  # tried together first
    assert answers["good"][0] == 200 and answers["also_good"][0] == 200
    assert_same(answers["good"][1]["predictions"], *expected(pipe, X.iloc[[1, 2]]), pipe.classes_)
    assert_same(answers["also_good"][1]["predictions"], *expected(pipe, X.iloc[[5]]), pipe.classes_)
    status, body, _ = answers["bad"]
    assert status == 422 and "row 1" in body["error"], body  # its own row number


def test_the_server_runs_one_single_threaded_worker_per_cpu_by_default(model):
    from skmm._threads import available_cpus
    from skmm.serve import MAX_DEFAULT_WORKERS

    batcher = in_process_app(model[1]).application.config["SKMM_BATCHER"]
    assert batcher.workers == min(available_cpus(), MAX_DEFAULT_WORKERS)
    assert batcher.n_threads == max(1, available_cpus() // batcher.workers)


def test_a_full_queue_answers_503_with_json_and_retry_after(model):
    _, pipe, X = model
    client = in_process_app(pipe, queue_size=1, workers=1)
    gate, started, _ = gate_predictions(client)
    batcher = client.application.config["SKMM_BATCHER"]
    answers = {}
    threads = [post_in_thread(client, {"row": good_row(X, 0)}, answers, "running")]
    assert started.wait(60)
    threads.append(post_in_thread(client, {"row": good_row(X, 1)}, answers, "queued"))
    deadline = time.monotonic() + 60
    while batcher._queue.qsize() < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    refused = client.post("/predict", json={"row": good_row(X, 2)})
    gate.set()
    for thread in threads:
        thread.join(60)
    assert refused.status_code == 503
    assert "--queue-size" in refused.get_json()["error"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert answers["running"][0] == 200 and answers["queued"][0] == 200


def test_a_request_not_answered_in_time_is_a_503(model):
    _, pipe, X = model
    client = in_process_app(pipe, request_timeout=0.3, workers=1)
    gate, started, _ = gate_predictions(client)
    answers = {}
    first = post_in_thread(client, {"row": good_row(X, 0)}, answers, "first")
    assert started.wait(60)
    late = client.post("/predict", json={"row": good_row(X, 1)})
    gate.set()
    first.join(60)
    assert late.status_code == 503 and "--request-timeout" in late.get_json()["error"]
    assert "Retry-After" in late.headers


@pytest.mark.parametrize(
    "option, value, words",
    [("max_batch_rows", 0, "max_batch_rows=0"), ("max_wait_ms", -2, "max_wait_ms=-2"),
     ("workers", 0, "workers=0"), ("queue_size", 0, "queue_size=0"),
     ("request_timeout", 0, "timeout=0"), ("torch_threads", 0, "n_threads=0")],
)
def test_batching_options_are_checked(model, option, value, words):
    from skmm.serve import create_app

    with pytest.raises(ValueError, match=words):
        create_app(model[1], warm_up=False, **{option: value})


def test_skmm_serve_passes_its_batching_options_and_stops_the_workers(monkeypatch, model):
    import waitress

    from skmm.cli import main

    seen = {}

    def fake_serve(app, **options):
        seen["batcher"] = app.config["SKMM_BATCHER"]
        seen["answer"] = app.test_client().post("/predict", json={"row": good_row(model[2])})

    monkeypatch.setattr(waitress, "serve", fake_serve)
    assert main(["serve", str(model[0]), "--workers", "2", "--max-batch-rows", "5",
                 "--max-wait-ms", "7.5", "--queue-size", "9", "--request-timeout", "11",
                 "--torch-threads", "1"]) == 0
    batcher = seen["batcher"]
    assert (batcher.workers, batcher.max_batch_rows, batcher.max_wait_ms, batcher.queue_size,
            batcher.timeout, batcher.n_threads) == (2, 5, 7.5, 9, 11, 1)
    assert seen["answer"].status_code == 200
    assert not batcher.running  # stopped when waitress returned
    for bad in (["--workers", "0"], ["--max-batch-rows", "0"], ["--max-wait-ms", "-1"],
                ["--queue-size", "0"], ["--request-timeout", "0"], ["--torch-threads", "0"]):
        assert main(["serve", str(model[0]), *bad]) == 1, bad


# --------------------------------------------------------------------------- a row's modalities side by side


def test_a_lone_rows_modalities_are_encoded_side_by_side_with_the_same_answers(model, monkeypatch):
    import skmm.fusion

    _, pipe, X = model
    pools = []
    thread_pool = skmm.fusion._thread_pool
    monkeypatch.setattr(skmm.fusion, "_thread_pool", lambda n: pools.append(n) or thread_pool(n))
    client = in_process_app(pipe, torch_threads=2, runtime="torch")  # on ONNX Runtime, one session per graph
    answer = client.post("/predict", json={"row": good_row(X, 3)})
    assert answer.status_code == 200, answer.get_json()
    assert pools == [2]  # the fusion ran the row's modalities in 2 threads
    assert_same(answer.get_json()["predictions"], *expected(pipe, X.iloc[[3]]), pipe.classes_)
    answer = client.post("/predict", json={"rows": [good_row(X, i) for i in (0, 6)]})
    assert pools == [2]  # several rows: one modality after the other, each with every thread
    assert_same(answer.get_json()["predictions"], *expected(pipe, X.iloc[[0, 6]]), pipe.classes_)
    assert pipe.named_steps["fusion"].n_jobs is None  # the pipeline served is left as it is


def test_json_true_is_not_the_number_one(model):
    _, pipe, X = model
    row = {**good_row(X), "price": True}
    answer = in_process_app(pipe).post("/predict", json={"row": row})
    assert answer.status_code == 422
    assert answer.get_json()["error"] == "column 'price', row 0: expected a number (or null), got true."


def test_waitress_s_own_413_is_json(model):
    """A body past waitress's limit never reaches the app; its answer is JSON all the same."""
    import threading

    from skmm.serve import _json_error_server, create_app

    path, _, _ = model
    app = create_app(path, warm_up=False)
    server = _json_error_server(app, host="127.0.0.1", port=0, max_request_body_size=1000, threads=2)
    port = server.effective_port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=b"x" * 5000, method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        with caught.value as error:
            assert error.code == 413 and error.headers["Content-Type"] == "application/json"
            assert "over the server's limit" in json.loads(error.read())["error"]
    finally:
        server.close()
        app.config["SKMM_BATCHER"].close()


@pytest.mark.parametrize("check", ["image", "audio"])
def test_upload_errors_show_no_memory_address(check):
    import re

    from skmm.io import check_audio_header, check_image_header

    checker = {"image": check_image_header, "audio": check_audio_header}[check]
    with pytest.raises(ValueError) as caught:
        checker(b"definitely not a media file" * 3)
    assert not re.search(r"0x[0-9a-fA-F]{6,}|object at", str(caught.value)), str(caught.value)


def test_onnx_runtime_answers_as_the_pipeline(model):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    _, pipe, X = model
    app = in_process_app(pipe, runtime="onnx")
    rows = [as_json_row(r) for r in X.to_dict("records")]
    answer = app.post("/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.get_json()
    labels, probabilities = expected(pipe, X)
    predictions = answer.get_json()["predictions"]
    assert [p["label"] for p in predictions] == labels.tolist()
    np.testing.assert_allclose([list(p["probabilities"].values()) for p in predictions], probabilities, atol=1e-4)
    row = X.iloc[[5]]  # one multipart upload, a missing price
    form = {"review": row["review"].iloc[0], "price": "", "colour": row["colour"].iloc[0],
            "photo": (io.BytesIO(row["photo"].iloc[0]), "cat.png")}
    answer = app.post("/predict", data=form, content_type="multipart/form-data")
    assert answer.status_code == 200, answer.get_json()
    single = row.assign(price=np.nan)
    np.testing.assert_allclose(list(answer.get_json()["predictions"][0]["probabilities"].values()),
                               pipe.predict_proba(single)[0], atol=1e-4)


def test_an_unknown_runtime_is_refused(model):
    with pytest.raises(ValueError, match="runtime='tensorflow'"):
        in_process_app(model[1], runtime="tensorflow")


def test_auto_runtime_is_onnx_when_the_model_exports_and_torch_otherwise(model):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from sklearn.linear_model import LogisticRegression

    from skmm.serve import create_app

    _, pipe, X = model
    app = create_app(pipe, warm_up=False)
    _APPS.append(app)
    assert (app.config["SKMM_RUNTIME"], app.config["SKMM_RUNTIME_NOTE"]) == ("onnx", None)
    plain = Pipeline([("fusion", pipe[0]), ("clf", LogisticRegression())]).fit(X, pipe.predict(X))
    app = create_app(plain, warm_up=False)
    _APPS.append(app)
    assert app.config["SKMM_RUNTIME"] == "torch"
    assert "cannot be exported to ONNX" in app.config["SKMM_RUNTIME_NOTE"]
    answer = app.test_client().post("/predict", json={"row": as_json_row(X.iloc[0].to_dict())})
    assert answer.status_code == 200
