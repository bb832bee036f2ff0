"""Tiny transformers models with random weights, saved to folders: fast, offline stand-ins for hub models."""

import string
from pathlib import Path

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "red", "blue", "green", "car", "cat",
         "dog", "bird", "sat", "ran", "on", "mat", "good", "bad", "##s", "##e"]
VOCAB += list(string.ascii_lowercase + string.digits + string.punctuation)


def save_tiny_bert(folder, seed=0):
    """A 2-layer, 32-wide BERT and a WordPiece tokenizer, saved to ``folder``; returns its path."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return str(folder)


def save_tiny_vit(folder, seed=0):
    """A 1-layer ViT on 32 px images and its PIL image processor, saved to ``folder``; returns its path."""
    import torch
    from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64)
    ViTModel(config).save_pretrained(folder)  # the pooler saved too: every process loads the same weights
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)
