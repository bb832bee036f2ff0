"""TextEncoder against a plain transformers loop with the same model and batch size.

The plain loop is what one writes by hand: batches of 32 texts in input order,
padded to the longest text of the batch, one forward pass, mean pooling over
the attention mask, L2 normalisation. TextEncoder (``cache=None``, so every
text is encoded) sorts the texts by length before batching, which wastes less
compute on padding, and encodes batches in up to 4 workers, each on its own torch
threads. Both run in this process, interleaved, several rounds, first on the
machine as it is, then with ``--busy`` background processes spinning on the CPU
(started and stopped here); the ratio of the medians is reported.

Run: ``python benchmarks/bench_text.py [--n 500] [--rounds 3] [--busy 1]``; a few minutes on two
idle cores.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _busy import compare  # noqa: E402

WORDS = (
    "the a of and to in is was for on that with as it by at from this be are or an have not "
    "but they his her which one all were we when there can more if no out so said what up its "
    "about into than them only some could time these two may then do first any my now such like "
    "model image sound review camera battery screen delivery quality price service product"
).split()


def make_sentences(n, seed=0):
    """Sentences from 2 to 120 words, most of them short (like real reviews)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(mean=2.6, sigma=0.8, size=n).astype(int), 2, 120)
    return [" ".join(rng.choice(WORDS, size=k)) + "." for k in lengths]


def plain_loop(texts, tokenizer, model, batch_size=32, max_length=256):
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                               max_length=max_length, return_tensors="pt")
            hidden = model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="number of sentences")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per condition")
    parser.add_argument("--busy", type=int, default=1, help="busy background processes (0: quiet only)")
    parser.add_argument("--n-threads", type=int, default=-1, help="TextEncoder's n_threads")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the plain loop (default: torch's own)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModel, AutoTokenizer

    from skmm import TextEncoder
    from skmm.encoders._text import DEFAULT_TEXT_MODEL, resolve_text_model

    texts = make_sentences(args.n)
    path = resolve_text_model(DEFAULT_TEXT_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    encoder = TextEncoder(cache=None, verbose=0, device="cpu", n_threads=args.n_threads).fit(texts[:2])

    # warm-up, and a check that both compute the same embeddings
    reference = plain_loop(texts[:64], tokenizer, model)
    ours = encoder.transform(texts[:64])
    max_diff = float(np.abs(reference - ours).max())

    print(f"{args.n} sentences (2-120 words, median {int(np.median([len(t.split()) for t in texts]))}), "
          f"all-MiniLM-L6-v2, batch 32, CPU; plain loop on torch's {torch.get_num_threads()} threads, "
          f"TextEncoder(n_threads={args.n_threads}, cache=None); "
          f"max |difference| between the two embeddings {max_diff:.1e}")
    compare(
        {"plain loop": lambda: plain_loop(texts, tokenizer, model), "TextEncoder": lambda: encoder.transform(texts)},
        baseline="plain loop", rounds=args.rounds, busy=sorted({0, args.busy}),
    )


if __name__ == "__main__":
    main()
