"""Torch helpers shared by the encoders and the fusion network (torch is imported inside them)."""

import contextlib

__all__ = ["inference_context", "masked_mean", "quiet_transformers"]


def inference_context(device):
    """``inference_mode``, plus bfloat16 autocast on CUDA (safe for frozen encoders)."""
    import torch

    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if str(device).startswith("cuda"):
        stack.enter_context(torch.autocast(device_type="cuda", dtype=torch.bfloat16))
    return stack


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' weight-loading progress bars and info logs while loading."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    verbosity = logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if was_enabled:
            logging.enable_progress_bar()


def masked_mean(values, mask, dim):
    """Mean of ``values`` over ``dim``, counting only the positions where ``mask`` is true.

    ``mask`` has the leading dimensions of ``values`` (e.g. ``(batch, tokens)``
    for ``(batch, tokens, features)``); where nothing is counted the mean is 0.
    """
    weights = mask.to(values.dtype)
    while weights.ndim < values.ndim:
        weights = weights.unsqueeze(-1)
    return (values * weights).sum(dim) / weights.sum(dim).clamp(min=1.0)
