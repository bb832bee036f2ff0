"""Tiny transformers models with random weights, saved to folders: fast, offline stand-ins for hub models."""

import string
import warnings
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
    BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)}).save_pretrained(folder)
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


def save_tiny_vision(folder, kind):
    """A tiny transformers vision model on 32 px images and its PIL processor, saved to ``folder``; returns its path.

    ``kind``: ``"dinov2"`` and ``"clip"`` (2 transformer layers; CLIP with its text tower),
    ``"convnext"`` (4 stages), ``"swin"`` (2 stages that downsample), ``"poolformer"`` (its stages
    are lists its encoder loops over, never called), ``"mobilenetv2"`` (convolutions that read
    their own stride: LoRA's wrappers break them).
    """
    import torch
    import transformers as hf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    layers = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    square = {"height": 32, "width": 32}
    if kind == "dinov2":
        model = hf.Dinov2Model(hf.Dinov2Config(image_size=32, patch_size=8, mlp_ratio=2, **layers))
        processor = hf.ViTImageProcessorPil(size=square)
    elif kind == "clip":
        text = {**layers, "num_hidden_layers": 1, "vocab_size": 100, "bos_token_id": 0, "eos_token_id": 1}
        vision = {"image_size": 32, "patch_size": 8, **layers}
        model = hf.CLIPModel(hf.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        processor = hf.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size=square)
    elif kind == "convnext":
        model = hf.ConvNextModel(hf.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1], image_size=32))
        processor = hf.ConvNextImageProcessorPil(size={"shortest_edge": 32}, crop_pct=1.0)
    elif kind == "swin":
        model = hf.SwinModel(hf.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                                           window_size=4))
        processor = hf.ViTImageProcessorPil(size=square)
    elif kind == "poolformer":
        model = hf.PoolFormerModel(hf.PoolFormerConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]))
        processor = hf.ConvNextImageProcessorPil(size={"shortest_edge": 32}, crop_pct=1.0)
    elif kind == "mobilenetv2":
        model = hf.MobileNetV2Model(hf.MobileNetV2Config(image_size=32, depth_multiplier=0.25))
        processor = hf.MobileNetV2ImageProcessorPil(size={"shortest_edge": 32}, crop_size=square)
    else:
        raise ValueError(kind)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def save_tiny_wav2vec2(folder, *, attention_mask):
    """A 2-layer, 32-wide wav2vec2 and its feature extractor, saved to ``folder``; returns its path.

    With ``attention_mask``, layer norms and an extractor that gives the mask (clips of a batch
    padded to the longest); without, group norm and no mask (as ``wav2vec2-base``).
    """
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer" if attention_mask else "group",
        do_stable_layer_norm=attention_mask,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Wav2Vec2Model(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=attention_mask).save_pretrained(folder)
    return Path(folder)


def save_tiny_whisper(folder, layers=1, init_std=0.02):
    """A Whisper of ``layers`` encoder layers, its extractor padding every clip to a 1 s window, saved to ``folder``.

    ``init_std``: the spread of the random weights. Whisper's default (0.02) leaves the hidden states mostly its
    positional embeddings, the same for every clip: fine-tuning tests take 0.2, so that a clip's sound drives them.
    """
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(0)
    config = WhisperConfig(
        num_mel_bins=16, d_model=16, encoder_layers=layers, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=50,
        max_target_positions=8, vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1, init_std=init_std,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        WhisperModel(config).eval().save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=16, chunk_length=1).save_pretrained(folder)
    return str(folder)


def save_tiny_ast(folder, layers=1, init_std=0.02):
    """An Audio Spectrogram Transformer of ``layers`` layers on a 1 s window of 16 filterbanks, saved to ``folder``.

    ``init_std``: the spread of the random weights (as for :func:`save_tiny_whisper`).
    """
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    torch.manual_seed(0)
    config = ASTConfig(hidden_size=16, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=32,
                       patch_size=16, frequency_stride=10, time_stride=10, max_length=100, num_mel_bins=16,
                       initializer_range=init_std)
    ASTModel(config).eval().save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=16, max_length=100).save_pretrained(folder)
    return str(folder)


def save_tiny_wavlm(folder):
    """A 2-layer, 32-wide WavLM and a feature extractor that gives the attention mask, saved to ``folder``."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    torch.manual_seed(0)
    config = WavLMConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, num_buckets=16, max_bucket_distance=64,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        WavLMModel(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folder)
    return str(folder)


def save_tiny_clap(folder):
    """A tiny CLAP (fusion on, as ``laion/clap-htsat-fused``) with a 1 s window at 16 kHz, saved to ``folder``."""
    import torch
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig

    torch.manual_seed(0)
    audio = ClapAudioConfig(spec_size=128, window_size=4, num_mel_bins=64, patch_size=4, patch_stride=(4, 4),
                            hidden_size=32, depths=[1, 1], num_attention_heads=[2, 2], projection_dim=16,
                            patch_embeds_hidden_size=16, enable_fusion=True)
    text = ClapTextConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, projection_dim=16, max_position_embeddings=40)
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)
    ClapModel(config).save_pretrained(folder)
    ClapFeatureExtractor(feature_size=64, sampling_rate=16000, max_length_s=1, hop_length=250, fft_window_size=512,
                         frequency_max=8000).save_pretrained(folder)
    return str(folder)
