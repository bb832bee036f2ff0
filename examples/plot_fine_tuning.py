"""
Fine-tuning a backbone
======================

An encoder is frozen by default: its pretrained model turns each row into an
embedding, and only the classifier learns. When those embeddings miss what
tells the classes apart, ``fine_tune`` lets the top of the backbone learn it
from the labels, inside the same ``Pipeline``:

- ``fine_tune="top"`` trains every weight of the last block(s);
- ``fine_tune="lora"`` trains low-rank adapters added to them (Hugging Face
  ``peft``): fewer weights to train and to keep;
- :class:`~skmm.FineTuning` sets how many blocks, epochs, the rank, ...

The frozen blocks below give the same activations at every epoch: they are
computed once per row and cached, so an epoch costs only the blocks that train.

This example runs offline in seconds on a tiny text model built from a
configuration (random weights), on a task its frozen features barely see:
whether "red" comes before "car" or after it. With a real model, pass its
name or folder as usual: ``TextEncoder("intfloat/multilingual-e5-small",
fine_tune="lora")``, ``ImageEncoder("facebook/dinov2-small", fine_tune="top")``
(vision transformers, CLIP's image tower, ConvNeXt, as well as the default
EfficientNet-Lite0).
"""

import tempfile

import numpy as np
import pandas as pd
import torch
from sklearn.pipeline import make_pipeline
from transformers import BertConfig, BertModel, BertTokenizerFast
from transformers.utils import logging

from skmm import FineTuning, MultimodalClassifier, MultimodalFusion, TextEncoder

torch.set_num_threads(1)
logging.disable_progress_bar()

# %%
# A tiny BERT and its tokenizer, saved to a folder as a downloaded model would be.
words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "car", "blue", "green", "dog", "bird", "mat", "sat"]
folder = tempfile.mkdtemp()
BertTokenizerFast(vocab={word: i for i, word in enumerate(words)}).save_pretrained(folder)
torch.manual_seed(0)
config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=64)
BertModel(config).save_pretrained(folder)


def red_car_or_car_red(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = []
    for label in labels:
        others = list(rng.choice(words[7:], 4))
        position = rng.integers(0, 5)
        others[position:position] = ["red", "car"] if label else ["car", "red"]
        texts.append(" ".join(others))
    return pd.DataFrame({"text": texts}), np.where(labels, "red car", "car red")


X_train, y_train = red_car_or_car_red(600, seed=0)
X_test, y_test = red_car_or_car_red(300, seed=1)
print(X_train.assign(label=y_train).head(3).to_string(index=False))

# %%
# The same pipeline, frozen and fine-tuned: only the encoder's ``fine_tune`` changes.
settings = {
    "frozen": None,
    "top": FineTuning("top", blocks=2, epochs=10, lr=1e-3, random_state=0),
    "lora": FineTuning("lora", blocks=2, epochs=10, random_state=0),
}
rows = []
for name, fine_tune in settings.items():
    fusion = MultimodalFusion([("text", TextEncoder(folder, fine_tune=fine_tune, verbose=0), "text")])
    pipe = make_pipeline(fusion, MultimodalClassifier(random_state=0, verbose=0))
    pipe.fit(X_train, y_train)
    encoder = pipe[0].named_transformers_["text"]
    trained = sum(w.size for w in getattr(encoder, "fine_tuned_", {}).values())
    rows.append({"fine_tune": name, "test accuracy": pipe.score(X_test, y_test), "weights kept": trained})
print(pd.DataFrame(rows).to_string(index=False))

# %%
# ``fine_tune_history_`` shows each epoch; the weights of the epoch with the lowest loss on the
# held-out rows are kept (epoch 0, the frozen weights, when no epoch beats them).
print(pd.DataFrame(encoder.fine_tune_history_).round(3).to_string(index=False))
