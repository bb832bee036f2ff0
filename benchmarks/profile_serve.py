"""Where a served row's time goes, with 1 and with 8 clients: ``skmm serve`` timed from the inside.

Runs the app of ``skmm serve`` (waitress, the micro-batcher, the model of ``bench_serve.py``:
image + text + audio + numeric + categorical) in this process with timers wrapped around its
parts, and sends it requests from a separate client process (``bench_serve.py``'s clients), so
that the clients take no time from the server's interpreter. For each workload (``--body``
multipart or json; ``--rows`` unique, every row new, or repeated, the same few rows again so the
embedding cache answers) and each number of clients, it prints the mean milliseconds per request
of each part:

* in the request's thread: reading and parsing the body (``parse``: JSON and base64, or the
  multipart form), checking the values and building the DataFrame (``frame``), the whole wait for
  the batcher's answer (``batcher wait``), writing the JSON answer and the rest of Flask
  (``answer + flask``);
* in the inference worker, per batch, divided among the batch's rows: each modality's
  transformer, the rest of the fusion (``fusion other``), the classifier, and the batcher's own
  work; ``queue`` is what a request waited before its batch started;

and the batch sizes seen. A run takes about (3 + duration) x phases seconds::

    python benchmarks/profile_serve.py                        # multipart, unique, 1 and 8 clients
    python benchmarks/profile_serve.py --body json --rows repeated --clients 1,8 --duration 6
"""

import argparse
import collections
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

_TIMES = collections.defaultdict(list)
_LOCK = threading.Lock()


def _record(name, seconds, rows=1):
    with _LOCK:
        _TIMES[name].append((seconds, rows))


def _timed(name, function, rows_of=None):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            rows = rows_of(*args, **kwargs) if rows_of else 1
            _record(name, time.perf_counter() - start, rows)

    return wrapper


def instrument(app, pipeline):
    """Wrap timers around the app's parts and the pipeline's steps (in place)."""
    from skmm.serve import _app
    from skmm.serve._batching import MicroBatcher

    batcher = app.config["SKMM_BATCHER"]
    # create_app's routes look the parsers up in skmm.serve._app, so they are wrapped there
    _app._rows_from_json = _timed("parse", _app._rows_from_json)
    _app._row_from_form = _timed("parse", _app._row_from_form)
    _app.RowDecoder.frame = _timed("frame", _app.RowDecoder.frame)

    submit = batcher.submit

    def timed_submit(frame):
        return _timed("batcher wait", submit)(frame)

    batcher.submit = timed_submit
    original_put = batcher._queue.put_nowait

    queued = {}  # id(job) -> when it was queued (jobs have __slots__)

    def put_nowait(job):
        queued[id(job)] = time.perf_counter()
        return original_put(job)

    batcher._queue.put_nowait = put_nowait
    run = MicroBatcher._run

    def timed_run(self, jobs):
        now = time.perf_counter()
        rows = sum(len(job.frame) for job in jobs)
        for job in jobs:
            _record("queue", now - queued.pop(id(job), now))
        _record("batch rows", rows, 1)
        return _timed("batch", run, lambda self, jobs: rows)(self, jobs)

    MicroBatcher._run = timed_run
    fusion = pipeline.named_steps["fusion"]
    for name, step, _ in fusion.transformers_:
        if not isinstance(step, str):
            step.transform = _timed(f"  {name}", step.transform, lambda X: len(X))
    # on the class: the server's lone-row copy of the fusion (modalities side by side) is timed too
    type(fusion).transform = _timed("fusion", type(fusion).transform, lambda self, X: len(X))
    clf = pipeline.named_steps["clf"]
    clf.predict_proba = _timed("classifier", clf.predict_proba, lambda X: len(X))
    wsgi = app.wsgi_app
    app.wsgi_app = _timed("request", wsgi)


def summary(requests):
    """Mean ms per request of each part (worker parts: per batch, shared among its rows)."""
    def total(name):
        return sum(seconds for seconds, _ in _TIMES.get(name, []))

    def per_row(name):
        entries = _TIMES.get(name, [])
        return 1e3 * sum(seconds for seconds, _ in entries) / max(1, requests)

    parts = {"parse": per_row("parse"), "frame": per_row("frame"), "batcher wait": per_row("batcher wait")}
    parts["answer + flask"] = per_row("request") - sum(parts.values())
    parts["request (total)"] = per_row("request")
    parts["queue"] = per_row("queue")
    steps = sorted(name for name in _TIMES if name.startswith("  "))
    for name in steps:
        parts[name] = per_row(name)
    parts["fusion other"] = per_row("fusion") - sum(per_row(name) for name in steps)
    parts["classifier"] = per_row("classifier")
    parts["batcher other"] = per_row("batch") - per_row("fusion") - per_row("classifier")
    sizes = [rows for rows, _ in _TIMES.get("batch rows", [])]
    return parts, (np.mean(sizes) if sizes else float("nan")), total("request")


CLIENT = """
import json, sys
sys.path.insert(0, {bench!r})
from bench_serve import load_phase, make_rows
rows, _ = make_rows({n}, seed={seed})
records = rows.to_dict("records")
if {repeated}:
    records = (records[:4] * ({n} // 4 + 1))[:{n}]
seconds, answers, _, errors = load_phase({url!r}, records, {clients}, {duration}, {body!r})
print(json.dumps({{"requests": len(answers), "seconds": seconds, "errors": errors[:3]}}))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model file (default: fit bench_serve.py's model)")
    parser.add_argument("--body", choices=["multipart", "json"], default="multipart")
    parser.add_argument("--rows", choices=["unique", "repeated"], default="unique")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--max-batch-rows", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=None,
                        help="inference workers (default: the server's, one per CPU up to 4)")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for the server (seconds; default: Python's)")
    parser.add_argument("--cache", choices=["disk", "memory"], default="disk",
                        help="the server's embedding cache: a disk folder of its own (skmm serve's "
                             "default) or memory only")
    args = parser.parse_args(argv)

    folder = tempfile.mkdtemp(prefix="skmm-profile-serve-")
    cache_dir = os.path.join(folder, "cache") if args.cache == "disk" else ""
    import skmm
    from bench_serve import fit_model, free_port
    from skmm.serve import _json_error_server, create_app

    model = args.model or os.path.join(folder, "model.skmm")
    os.environ["SKMM_CACHE_DIR"] = ""
    if not args.model:
        fit_model(model, 40, audio=True)
    os.environ["SKMM_CACHE_DIR"] = cache_dir  # the served model's encoders look it up when used
    pipeline = skmm.load(model)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    app = create_app(pipeline, max_batch_rows=args.max_batch_rows, max_wait_ms=args.max_wait_ms,
                     workers=args.workers)
    instrument(app, pipeline)
    port = free_port()
    server = _json_error_server(app, host="127.0.0.1", port=port, threads=32, ident="skmm",
                                asyncore_use_poll=True)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}/predict"
    bench = os.path.dirname(os.path.abspath(__file__))
    batcher = app.config["SKMM_BATCHER"]
    print(f"{args.body} bodies, {args.rows} rows, {args.cache} cache, {batcher.workers} worker(s) of {batcher.n_threads} "
          f"torch thread(s), batches of <= {args.max_batch_rows}, wait {args.max_wait_ms:g} ms; "
          "ms per request")
    table = {}
    for phase, clients in enumerate(int(c) for c in args.clients.split(",")):
        for warm in (True, False):
            _TIMES.clear()
            code = CLIENT.format(bench=bench, n=8 if warm else int(80 * args.duration),
                                 seed=1000 * phase + warm, repeated=args.rows == "repeated",
                                 duration=1.0 if warm else args.duration, url=url, body=args.body,
                                 clients=clients)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 env=dict(os.environ, SKMM_CACHE_DIR=""))
            if out.returncode:
                raise SystemExit(out.stderr[-2000:])
        result = json.loads(out.stdout.strip().splitlines()[-1])
        parts, batch, _ = summary(result["requests"])
        rate = result["requests"] / result["seconds"]
        table[f"{clients} client(s)"] = dict(parts, **{"rows/s": rate, "mean batch rows": batch})
        if result["errors"]:
            print("errors:", result["errors"])
    names = list(next(iter(table.values())))
    print("| part | " + " | ".join(table) + " |")
    print("|---|" + "---:|" * len(table))
    for name in names:
        print(f"| {name.strip() if not name.startswith('  ') else '· ' + name.strip()} | "
              + " | ".join(f"{column[name]:.1f}" for column in table.values()) + " |")
    print(f"load average {os.getloadavg()[0]:.1f}")
    server.close()


if __name__ == "__main__":
    main()
