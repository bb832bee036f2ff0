"""Latency and throughput of ``skmm serve`` against in-process ``pipeline.predict_proba``.

Fits a small model with the default encoders (EfficientNet-Lite0 images,
MiniLM texts, MFCC audio, numeric and categorical columns), starts
``python -m skmm serve`` on loopback, and measures

* single-row latency of ``POST /predict`` (JSON, base64 image and audio),
  requests sent one after the other: median and p95;
* the same rows predicted in-process with ``pipeline.predict_proba`` in a
  worker thread (as the server does): the baseline, and the ratio server /
  in-process; and fresh rows predicted in the main thread, which on an
  oversubscribed machine can be much slower (torch's intra-op threads spin);
* rows per second under concurrent load (``--concurrency`` client threads,
  ``--concurrent-requests`` requests in all, one row each).

Every request carries a row never seen before (fresh image noise, text and
tone), so the embedding cache never answers in place of the encoders. On a
shared machine compare the ratios of one run, not absolute times::

    python benchmarks/bench_serve.py --requests 60 --concurrent-requests 200 --concurrency 8
"""

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np
import pandas as pd


def make_rows(n, seed, *, audio=True):
    import soundfile
    from PIL import Image

    rng = np.random.default_rng(seed)
    words = "cat dog bird fish warm cold bright dark quick slow small large happy noisy".split()
    rows, labels = [], []
    for i in range(n):
        label = ["cat", "dog"][i % 2]
        base = np.array((220, 40, 40) if label == "cat" else (40, 80, 220))
        pixels = np.clip(base + rng.normal(0, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
        png = io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG")
        row = {
            "photo": png.getvalue(),
            "review": f"the {label} was " + " ".join(rng.choice(words, 8)) + f" {seed}-{i}",
            "weight": float(rng.normal(4 if label == "cat" else 20, 3)),
            "colour": str(rng.choice(["black", "white", "ginger"])),
        }
        if audio:
            t = np.arange(16000) / 16000
            freq = (300 if label == "cat" else 1500) * rng.uniform(0.8, 1.2)
            wav = io.BytesIO()
            soundfile.write(wav, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000,
                            format="WAV")
            row["voice"] = wav.getvalue()
        rows.append(row)
        labels.append(label)
    return pd.DataFrame(rows), np.array(labels)


def fit_model(path, n_train, audio):
    from sklearn.pipeline import Pipeline

    import skmm
    from skmm.encoders import BaseEncoder

    X, y = make_rows(n_train, seed=0, audio=audio)
    fusion = skmm.infer_modalities(X)
    fusion.set_params(**{f"{name}__verbose": 0 for name, step, _ in fusion.transformers
                         if isinstance(step, BaseEncoder)})
    pipe = Pipeline([("fusion", fusion),
                     ("clf", skmm.MultimodalClassifier(max_epochs=20, random_state=0))])
    pipe.fit(X, y)
    skmm.save(pipe, path)
    return pipe


def as_json(row):
    return {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in row.items()}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url, row):
    body = json.dumps({"row": as_json(row)}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as answer:
        return json.loads(answer.read())


def percentiles(seconds):
    ms = np.asarray(seconds) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 95))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="serve this model file instead of fitting one")
    parser.add_argument("--train", type=int, default=40, help="rows to fit the model on")
    parser.add_argument("--requests", type=int, default=60, help="sequential single-row requests")
    parser.add_argument("--concurrent-requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    parser.add_argument("--no-audio", action="store_true", help="leave the audio column out")
    args = parser.parse_args(argv)
    audio = not args.no_audio

    import skmm
    from skmm.encoders import BaseEncoder

    folder = tempfile.mkdtemp(prefix="skmm-bench-")
    model = args.model or os.path.join(folder, "model.skmm")
    start = time.perf_counter()
    pipe = skmm.load(model) if args.model else fit_model(model, args.train, audio)
    for _, step, _ in pipe.named_steps["fusion"].transformers_:
        if isinstance(step, BaseEncoder):
            step.set_params(verbose=0)  # no progress bars in the timings
    print(f"model ready in {time.perf_counter() - start:.1f}s: {model}")

    port = free_port()
    url = f"http://127.0.0.1:{port}/predict"
    server = subprocess.Popen(
        [sys.executable, "-m", "skmm", "serve", model, "--port", str(port),
         "--threads", str(args.threads)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        start = time.perf_counter()
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - start > 300:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
        print(f"server up in {time.perf_counter() - start:.1f}s (load + warm-up), "
              f"{args.threads} waitress threads")

        warm, _ = make_rows(4, seed=1, audio=audio)
        for row in warm.to_dict("records"):
            post(url, row)
            pipe.predict_proba(pd.DataFrame([row]))

        def timed_predict(row):
            t0 = time.perf_counter()
            proba = pipe.predict_proba(pd.DataFrame([row]))
            return time.perf_counter() - t0, proba

        # the server predicts in waitress worker threads; torch behaves differently there
        # than in the main thread on a busy machine, so the baseline is taken in both
        from concurrent.futures import ThreadPoolExecutor

        worker_thread = ThreadPoolExecutor(1)
        rows, _ = make_rows(args.requests, seed=2, audio=audio)
        records = rows.to_dict("records")
        fresh, _ = make_rows(args.requests, seed=4, audio=audio)
        served, local, local_thread = [], [], []
        for row, other in zip(records, fresh.to_dict("records")):
            t0 = time.perf_counter()
            answer = post(url, row)
            served.append(time.perf_counter() - t0)
            seconds, proba = worker_thread.submit(timed_predict, row).result()
            local_thread.append(seconds)
            local.append(timed_predict(other)[0])
            got = list(answer["predictions"][0]["probabilities"].values())
            assert np.allclose(got, proba[0], atol=1e-4), (got, proba)
        worker_thread.shutdown()

        many, _ = make_rows(args.concurrent_requests, seed=3, audio=audio)
        queue = list(many.to_dict("records"))
        lock, errors = threading.Lock(), []

        def worker():
            while True:
                with lock:
                    if not queue:
                        return
                    row = queue.pop()
                try:
                    post(url, row)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(repr(exc))

        t0 = time.perf_counter()
        clients = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)

    served_median, served_p95 = percentiles(served)
    local_median, local_p95 = percentiles(local)
    thread_median, thread_p95 = percentiles(local_thread)
    print(f"columns: {list(rows.columns)}; cores: {os.cpu_count()}")
    print(f"single-row latency over HTTP ({args.requests} sequential requests): "
          f"median {served_median:.1f} ms, p95 {served_p95:.1f} ms")
    print(f"in-process predict_proba, same rows, in a worker thread: median {thread_median:.1f} ms, "
          f"p95 {thread_p95:.1f} ms")
    print(f"in-process predict_proba, fresh rows, in the main thread: median {local_median:.1f} ms, "
          f"p95 {local_p95:.1f} ms")
    print(f"ratio HTTP / in-process worker thread (median): {served_median / thread_median:.2f}x "
          f"({served_median - thread_median:+.1f} ms per request)")
    print(f"ratio HTTP / in-process main thread (median): {served_median / local_median:.2f}x")
    print(f"sequential throughput: {1e3 / served_median:.1f} rows/s")
    print(f"concurrent load: {args.concurrent_requests} requests from {args.concurrency} threads "
          f"in {elapsed:.1f}s = {args.concurrent_requests / elapsed:.1f} rows/s, "
          f"{len(errors)} errors")
    if errors:
        print("first error:", errors[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
