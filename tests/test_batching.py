"""MicroBatcher: requests queued together are predicted as one batch, each gets its own rows."""

import threading
import time

import pandas as pd
import pytest

from skmm.serve._batching import BatcherBusy, MicroBatcher


class GatedModel:
    """predict(frame) -> x * 10; the first call waits for ``gate``, so requests pile up meanwhile."""

    def __init__(self):
        self.gate = threading.Event()
        self.started = threading.Event()
        self.calls = []  # the x values of each call, in order

    def __call__(self, frame):
        self.calls.append(list(frame["x"]))
        if len(self.calls) == 1:
            self.started.set()
            assert self.gate.wait(30), "the test never opened the gate"
        if (frame["x"] < 0).any():
            raise ValueError("negative x")
        return [10 * x for x in frame["x"]]


def frame(*values):
    return pd.DataFrame({"x": list(values)})


def submit_in_thread(batcher, data, answers, key):
    def run():
        try:
            answers[key] = batcher.submit(data)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            answers[key] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_until(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def pile_up(batcher, model, requests):
    """Block the worker on a first request, queue ``requests`` behind it, then let it go."""
    answers = {}
    threads = [submit_in_thread(batcher, frame(0), answers, "first")]
    assert model.started.wait(30)
    for key, data in requests.items():
        threads.append(submit_in_thread(batcher, data, answers, key))
    wait_until(lambda: batcher._queue.qsize() == len(requests))
    model.gate.set()
    for thread in threads:
        thread.join(30)
    return answers


def test_requests_queued_together_run_as_one_batch_and_each_gets_its_own_rows():
    model = GatedModel()
    requests = {"a": frame(1), "b": frame(2, 3, 4), "c": frame(5), "d": frame(6, 7)}
    with MicroBatcher(model, max_batch_rows=32, max_wait_ms=20) as batcher:
        answers = pile_up(batcher, model, requests)
    assert answers["first"] == [0]
    for key, data in requests.items():
        assert answers[key] == [10 * x for x in data["x"]], key
    assert len(model.calls) == 2  # the first request, then the four others together
    assert sorted(model.calls[1]) == [1, 2, 3, 4, 5, 6, 7]


class RecordingModel:
    """predict(frame) -> x * 10, noting the x values of each call."""

    def __init__(self):
        self.calls = []

    def __call__(self, frame):
        self.calls.append(list(frame["x"]))
        return [10 * x for x in frame["x"]]


def test_a_lone_request_never_waits_for_a_batch_to_fill():
    """With nobody else in the server, a ten-minute max_wait_ms must not hold the request back:
    if it did, the answer would miss the request's timeout and submit would raise."""
    model = RecordingModel()
    with MicroBatcher(model, max_wait_ms=600_000, timeout=300) as batcher:
        for value in (1, 2, 3):
            with batcher.handling():
                assert batcher.submit(frame(value)) == [10 * value]
    assert model.calls == [[1], [2], [3]]


def test_a_worker_waits_for_requests_still_in_the_server_to_join_its_batch():
    """A request being read (inside handling(), not yet submitted) when the worker starts a batch
    joins that batch instead of running after it."""
    model = RecordingModel()
    answers = {}
    with MicroBatcher(model, max_batch_rows=8, max_wait_ms=600_000, timeout=300) as batcher:
        with batcher.handling():  # "late": read, but not submitted yet

            def early():
                with batcher.handling():
                    answers["early"] = batcher.submit(frame(1))

            thread = threading.Thread(target=early)
            thread.start()
            wait_until(lambda: batcher._threads and batcher._queue.empty() and not model.calls
                       and batcher._handling == 2, seconds=300)
            answers["late"] = batcher.submit(frame(2))  # the worker holds "early", waiting for it
        thread.join(300)
    assert answers == {"early": [10], "late": [20]}
    assert len(model.calls) == 1 and sorted(model.calls[0]) == [1, 2]  # one batch of both


def test_a_bad_request_does_not_fail_the_others_of_its_batch():
    model = GatedModel()
    requests = {"good": frame(1, 2), "bad": frame(3, -1), "also_good": frame(4)}
    with MicroBatcher(model, max_wait_ms=20) as batcher:
        answers = pile_up(batcher, model, requests)
    assert answers["good"] == [10, 20]
    assert answers["also_good"] == [40]
    assert isinstance(answers["bad"], ValueError) and "negative x" in str(answers["bad"])
    batched = [call for call in model.calls if len(call) == 5]
    assert len(batched) == 1  # tried together once, then each request alone


def test_a_batch_never_holds_more_than_max_batch_rows_but_a_large_request_runs_alone():
    model = GatedModel()
    requests = {f"r{i}": frame(i, i) for i in range(1, 6)}
    requests["big"] = frame(*range(100, 105))
    with MicroBatcher(model, max_batch_rows=4, max_wait_ms=20) as batcher:
        answers = pile_up(batcher, model, requests)
    for key, data in requests.items():
        assert answers[key] == [10 * x for x in data["x"]], key
    for call in model.calls[1:]:
        assert len(call) <= 4 or sorted(call) == list(range(100, 105))


def test_a_full_queue_refuses_at_once_with_a_retry_after():
    model = GatedModel()
    with MicroBatcher(model, queue_size=2) as batcher:
        answers = {}
        threads = [submit_in_thread(batcher, frame(0), answers, "first")]
        assert model.started.wait(30)
        threads += [submit_in_thread(batcher, frame(i), answers, i) for i in (1, 2)]
        wait_until(lambda: batcher._queue.qsize() == 2)
        with pytest.raises(BatcherBusy, match="--queue-size") as refused:
            batcher.submit(frame(3))
        assert refused.value.retry_after >= 1
        model.gate.set()
        for thread in threads:
            thread.join(30)
    assert answers == {"first": [0], 1: [10], 2: [20]}


def test_a_request_waiting_past_the_timeout_is_refused_and_never_predicted():
    model = GatedModel()
    with MicroBatcher(model, timeout=0.2) as batcher:
        answers = {}
        first = submit_in_thread(batcher, frame(0), answers, "first")
        assert model.started.wait(30)
        with pytest.raises(BatcherBusy, match="no answer within 0.2 s"):
            batcher.submit(frame(9))
        model.gate.set()
        first.join(30)
        assert batcher.submit(frame(1)) == [10]
    assert [9] not in model.calls


def test_workers_start_with_the_first_request_and_stop_on_close():
    def alive():
        return [t for t in threading.enumerate() if t.name.startswith("skmm-batcher")]

    before = len(alive())
    batcher = MicroBatcher(lambda f: list(f["x"]), workers=3)
    assert len(alive()) == before and not batcher.running
    assert batcher.submit(frame(1, 2)) == [1, 2]
    assert batcher.running and len(alive()) == before + 3
    batcher.close()
    assert not batcher.running and len(alive()) == before
    with pytest.raises(BatcherBusy, match="shutting down"):
        batcher.submit(frame(1))


def test_workers_predict_under_their_torch_thread_budget():
    torch = pytest.importorskip("torch")
    seen = []
    before = torch.get_num_threads()
    with MicroBatcher(lambda f: seen.append(torch.get_num_threads()) or list(f["x"]),
                      n_threads=1) as batcher:
        batcher.submit(frame(1))
    assert seen == [1]
    assert torch.get_num_threads() == before  # the caller's setting is untouched


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("max_batch_rows", 0, "max_batch_rows=0: expected an integer of at least 1"),
        ("max_batch_rows", 2.5, "max_batch_rows=2.5: expected an integer"),
        ("max_wait_ms", -1, "max_wait_ms=-1: expected a finite number >= 0"),
        ("max_wait_ms", float("inf"), "max_wait_ms=inf: expected a finite number"),
        ("workers", 0, "workers=0: expected an integer of at least 1"),
        ("queue_size", True, "queue_size=True: expected an integer"),
        ("timeout", 0, "timeout=0: expected a finite number > 0"),
        ("n_threads", 0, "n_threads=0: expected an integer of at least 1"),
    ],
)
def test_parameters_are_checked_with_clear_errors(option, value, words):
    with pytest.raises(ValueError, match=words.replace(".", r"\.")):
        MicroBatcher(lambda f: [], **{option: value})
