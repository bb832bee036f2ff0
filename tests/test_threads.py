"""The torch thread budget: applied inside the block, the caller's setting restored after it."""

import threading

import pytest
import torch

from skmm._threads import available_cpus, resolve_n_threads, torch_threads


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_budget_is_applied_and_restored(two_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_restored_after_an_error(two_threads):
    with pytest.raises(RuntimeError, match="boom"):
        with torch_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_none_leaves_the_setting_alone(two_threads):
    with torch_threads(None):
        assert torch.get_num_threads() == 2


def test_nested_blocks_restore_the_callers_setting_once(two_threads):
    with torch_threads(1):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_a_budget_in_another_thread_leaves_this_one_alone(two_threads):
    inside, release = threading.Barrier(3), threading.Event()
    seen = []

    def work():
        with torch_threads(1):
            inside.wait(timeout=30)
            seen.append(torch.get_num_threads())
            release.wait(timeout=30)

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        inside.wait(timeout=30)
        assert torch.get_num_threads() == 2
    finally:
        release.set()
        for worker in workers:
            worker.join(timeout=30)
    assert seen == [1, 1]
    assert torch.get_num_threads() == 2


def test_counts_are_capped_at_the_available_cpus():
    assert resolve_n_threads(None) is None
    assert resolve_n_threads(10_000) == available_cpus()
    assert resolve_n_threads(-1) == available_cpus()
    assert resolve_n_threads(1) == 1
