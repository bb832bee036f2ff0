"""Latency and throughput of ``skmm serve`` against in-process ``pipeline.predict_proba``.

Fits a small model with the default encoders (EfficientNet-Lite0 images, MiniLM texts, MFCC
audio, numeric and categorical columns), starts ``python -m skmm serve`` on loopback (micro-batched
predictions: ``--workers``, ``--max-batch-rows``, ``--max-wait-ms`` are passed on), and measures,
for each request body (``--body``: ``multipart``, the files uploaded as ``curl -F`` sends them,
and ``json``, the files in base64):

* single-row latency of ``POST /predict``, requests sent one after the other: p50, p95, p99;
  against the same rows predicted in-process afterwards, one ``pipeline.predict_proba`` call per
  row as a user's script makes it (torch's own thread count, nothing else running: the
  baseline), and the ratio; every answer is checked against the in-process prediction;
* rows per second with 1, 8 and 32 concurrent clients (``--clients``), each for ``--duration``
  seconds, on a quiet machine and with ``--busy`` (default 2) busy background processes that the
  script starts and stops itself; for each, the slowest request, p99 and the failures, and every
  answer is checked against the in-process prediction.

Every request carries a row never seen before (fresh image noise, text and tone), so no cache
answers in place of the encoders; the server keeps its embeddings in a disk folder of its own, as
``skmm serve`` does by default (``--server-cache memory``: in memory only). On a shared machine
compare the ratios of one run, not absolute times. A run takes about 2 + 12 x duration seconds
per body plus the checks. ``--runtime onnx`` serves with ``skmm serve --runtime onnx`` and takes the
in-process baseline on ONNX Runtime too (``skmm.onnx.OnnxModel``); every answer is still checked
against the torch pipeline::

    python benchmarks/bench_serve.py                      # 40 requests, 1/8/32 clients, 8 s each
    python benchmarks/bench_serve.py --requests 20 --duration 5 --clients 1,8 --body multipart
"""

import argparse
import base64
import io
import json
import math
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


FILE_TYPES = {"photo": ("photo.png", "image/png"), "voice": ("voice.wav", "audio/wav")}


def as_multipart(row):
    """A ``multipart/form-data`` body of one row, as a browser or ``curl -F`` sends it."""
    boundary = f"skmm{time.time_ns():x}"
    parts = []
    for name, value in row.items():
        if isinstance(value, bytes):
            filename, mime = FILE_TYPES.get(name, (name, "application/octet-stream"))
            head = (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: {mime}\r\n\r\n")
        else:
            head, value = f'Content-Disposition: form-data; name="{name}"\r\n\r\n', str(value).encode()
        parts.append(f"--{boundary}\r\n{head}".encode() + value + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(url, row, body_format="json"):
    if body_format == "multipart":
        body, content_type = as_multipart(row)
    else:
        body, content_type = json.dumps({"row": as_json(row)}).encode(), "application/json"
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=300) as answer:
        return json.loads(answer.read())


def percentiles(seconds):
    ms = np.asarray(seconds) * 1e3
    return {q: float(np.percentile(ms, q)) for q in (50, 95, 99)}


def busy_processes(count, seconds):
    """``count`` processes spinning a core each, for at most ``seconds``."""
    spin = f"import time\nend = time.time() + {seconds:.0f}\nwhile time.time() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]


def stop(processes):
    for process in processes:
        process.kill()
        process.wait(timeout=30)


def start_server(model, args, cache_dir):
    port = free_port()
    command = [sys.executable, "-m", "skmm", "serve", model, "--port", str(port), "--runtime", args.runtime,
               "--threads", str(args.threads), "--workers", str(args.workers),
               "--max-batch-rows", str(args.max_batch_rows), "--max-wait-ms", str(args.max_wait_ms)]
    environment = dict(os.environ, SKMM_CACHE_DIR=cache_dir)
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=environment)
    start = time.perf_counter()
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).close()
            return server, port
        except OSError:
            if server.poll() is not None or time.perf_counter() - start > 300:
                server.kill()
                raise SystemExit("the server did not start")
            time.sleep(0.2)


def load_phase(url, rows, clients, duration, body_format):
    """``clients`` threads posting one fresh row each, for ``duration`` seconds."""
    lock, answers, latencies, errors = threading.Lock(), {}, [], []
    pending = iter(range(len(rows)))
    end = time.perf_counter() + duration

    def client():
        while time.perf_counter() < end:
            with lock:
                i = next(pending, None)
            if i is None:
                return
            t0 = time.perf_counter()
            try:
                answer = post(url, rows[i], body_format)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(repr(exc))
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
                answers[i] = list(answer["predictions"][0]["probabilities"].values())

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - t0, answers, latencies, errors


def check(pipe, rows, answers):
    """Rows whose answer differs from the in-process prediction (predicted in batches of 32)."""
    order = sorted(answers)
    frame = pd.DataFrame([rows[i] for i in order])
    expected = np.vstack([pipe.predict_proba(frame.iloc[s:s + 32]) for s in range(0, len(frame), 32)])
    return [i for i, row in zip(order, expected)
            if not np.allclose(answers[i], row, atol=1e-4)]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("::")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="serve this model file instead of fitting one")
    parser.add_argument("--train", type=int, default=40, help="rows to fit the model on")
    parser.add_argument("--requests", type=int, default=40, help="sequential single-row requests")
    parser.add_argument("--clients", default="1,8,32",
                        help="concurrent clients of each load phase, comma separated")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of each load phase")
    parser.add_argument("--busy", type=int, default=2,
                        help="busy background processes in the loaded phases (0: quiet only)")
    parser.add_argument("--body", default="multipart,json",
                        help="request bodies to measure, comma separated: multipart (files uploaded as "
                             "curl -F sends them), json (files in base64)")
    parser.add_argument("--server-cache", choices=["disk", "memory"], default="disk",
                        help="the server's embedding cache: its own empty disk folder (what skmm serve "
                             "uses by default) or memory only")
    parser.add_argument("--threads", type=int, default=32, help="waitress threads")
    parser.add_argument("--workers", type=int, default=None,
                        help="inference workers (default: the server's, one per CPU up to 4)")
    parser.add_argument("--max-batch-rows", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=20.0)
    parser.add_argument("--no-audio", action="store_true", help="leave the audio column out")
    parser.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                        help="the server's runtime (skmm serve --runtime), and the in-process baseline's; "
                        "the load phases' answers are checked against the torch pipeline either way")
    args = parser.parse_args(argv)
    audio = not args.no_audio
    clients = [int(c) for c in args.clients.split(",") if c]
    bodies = [b for b in args.body.split(",") if b]
    if not set(bodies) <= {"multipart", "json"}:
        parser.error(f"--body: expected multipart and/or json, got {args.body!r}")

    # this process keeps its embeddings in memory; the server has a disk folder of its own, so
    # neither answers from the other's cache (and every row is new to both anyway)
    folder = tempfile.mkdtemp(prefix="skmm-bench-")
    server_cache = os.path.join(folder, "server-cache") if args.server_cache == "disk" else ""
    os.environ["SKMM_CACHE_DIR"] = ""

    import skmm
    from skmm._threads import available_cpus
    from skmm.encoders import BaseEncoder
    from skmm.serve import default_workers

    args.workers = args.workers or default_workers()

    model = args.model or os.path.join(folder, "model.skmm")
    start = time.perf_counter()
    pipe = skmm.load(model) if args.model else fit_model(model, args.train, audio)
    for _, step, _ in pipe.named_steps["fusion"].transformers_:
        if isinstance(step, BaseEncoder):
            step.set_params(verbose=0)  # no progress bars in the timings
    budget = max(1, available_cpus() // args.workers)  # the server's torch threads per worker
    print(f"model ready in {time.perf_counter() - start:.1f}s: {model}")

    phases = [(n, 0) for n in clients] + ([(n, args.busy) for n in clients] if args.busy else [])
    per_phase = int(100 * args.duration)  # fresh rows for every request: enough for ~100 rows/s
    warm_up = 12  # rows sent first and left out: every pool, connection and kernel in use already
    pool, _ = make_rows(warm_up + len(bodies) * (args.requests + per_phase * len(phases)),
                        seed=time.time_ns() % 2**32, audio=audio)
    records = pool.to_dict("records")
    warm, records = records[:warm_up], records[warm_up:]

    server, port = start_server(model, args, server_cache)
    url = f"http://127.0.0.1:{port}/predict"
    sequential, results, background = {}, [], []

    local_model = pipe  # in-process baseline: the server's runtime, in this process
    if args.runtime == "onnx":
        from skmm.onnx import OnnxModel, export_onnx

        local_model = OnnxModel(export_onnx(pipe, os.path.join(folder, "onnx")), cache=None)

    def timed_predict(row):
        t0 = time.perf_counter()
        proba = local_model.predict_proba(pd.DataFrame([row]))
        return time.perf_counter() - t0, proba

    try:
        for row in warm[:4]:
            timed_predict(row)
        for i, row in enumerate(warm):
            post(url, row, bodies[i % len(bodies)])
        for body_format in bodies:
            rows, records = records[:args.requests], records[args.requests:]
            served, answers = [], []
            for row in rows:  # all over HTTP first: no torch thread of this process spins meanwhile
                t0 = time.perf_counter()
                answers.append(post(url, row, body_format))
                served.append(time.perf_counter() - t0)
            local, mismatched = [], 0
            for row, answer in zip(rows, answers):
                seconds, proba = timed_predict(row)
                local.append(seconds)
                got = list(answer["predictions"][0]["probabilities"].values())
                mismatched += not np.allclose(got, proba[0], atol=1e-4)
            sequential[body_format] = (served, local, mismatched)

        for body_format in bodies:
            for n_clients, n_busy in phases:
                stop(background)
                background = busy_processes(n_busy, args.duration + 120)
                rows, records = records[:per_phase], records[per_phase:]
                elapsed, answers, latencies, errors = load_phase(url, rows, n_clients, args.duration,
                                                                 body_format)
                stop(background)
                background = []
                load = os.getloadavg()[0]
                results.append((body_format, n_clients, n_busy, elapsed, answers, latencies, errors,
                                rows, load))
    finally:
        stop(background)
        server.terminate()
        server.wait(timeout=30)

    print(f"columns: {list(pool.columns)}; cores: {available_cpus()}; server: {args.threads} "
          f"waitress threads, {args.workers} worker(s) x {budget} torch thread(s), batches of <= "
          f"{args.max_batch_rows} rows, wait {args.max_wait_ms:g} ms, "
          f"{'a disk' if server_cache else 'a memory-only'} embedding cache, runtime {args.runtime}")
    failed = 0
    for body_format, (served, local, mismatched) in sequential.items():
        served_p, local_p = percentiles(served), percentiles(local)
        print(f"[{body_format}] single-row latency over HTTP ({args.requests} sequential requests): "
              + ", ".join(f"p{q} {v:.1f} ms" for q, v in served_p.items()))
        print(f"[{body_format}] in-process predict_proba ({args.runtime}), same rows, one call each: "
              + ", ".join(f"p{q} {v:.1f} ms" for q, v in local_p.items()))
        print(f"[{body_format}] ratio HTTP / in-process (p50): {served_p[50] / local_p[50]:.2f}x "
              f"({served_p[50] - local_p[50]:+.1f} ms per request); "
              f"{mismatched} answers differ from in-process")
        failed += mismatched
    print("| body | clients | busy processes | requests | rows/s | p50 ms | p99 ms | max ms | failed "
          "| differ from in-process | load avg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for body_format, n_clients, n_busy, elapsed, answers, latencies, errors, rows, load in results:
        differ = check(pipe, rows, answers) if answers else []
        p = percentiles(latencies) if latencies else {50: math.nan, 99: math.nan}
        slowest = max(latencies, default=math.nan) * 1e3
        print(f"| {body_format} | {n_clients} | {n_busy} | {len(answers)} | "
              f"{len(answers) / elapsed:.1f} | {p[50]:.0f} | {p[99]:.0f} | {slowest:.0f} | "
              f"{len(errors)} | {len(differ)} | {load:.1f} |")
        if len(answers) == len(rows):
            print(f"  (the {len(rows)} fresh rows ran out before {args.duration:g} s)")
        if errors:
            print("  first error:", errors[0])
        failed += len(errors) + len(differ)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
