"""``DescriberModel``: a fine-tuned BLIP-2 answering a product's attribute questions about its photos.

How a product request is answered (``score_and_answer``, which evaluation calls too):

- a question about an attribute with a vocabulary is *scored* (``endpoint.scoring``): every allowed
  value, as the answer text the model was trained to produce (``format_answer``: "Sleeve Length: Long
  Sleeves", end of sequence included), gets its summed token log-likelihood given the image and the
  question, teacher-forced. A softmax over an attribute's candidates at the model's calibrated
  temperature (``describer_model.json`` ``calibration``) gives ``confidence``; the runners-up come
  back as ``alternatives``;
- any other question (an attribute outside the catalogue) is answered by greedy generation
  (``endpoint.generation``), batched, and normalised with ``parse_answer``: ``known`` false, no
  confidence.

Each image goes through the vision encoder once (``endpoint.vision_cache``); a product request naming
an S3 object version whose features are cached does not read the object again. Concurrent requests
share batched passes (``endpoint.batching``). The reference request is answered by greedy
generation, as the reference endpoint did. Nothing here logs payloads or image bytes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from pydantic import ValidationError
from transformers import Blip2ForConditionalGeneration, Blip2Processor

from describer_rules.answers import MAX_ANSWER_TOKENS, format_answer, parse_answer
from describer_rules.catalogue import (
    GENERIC_CATEGORY,
    AttributeSpec,
    Catalogue,
    load_catalogue,
    normalise_token,
)
from describer_rules.confidence import Calibration
from describer_rules.contracts import (
    AttributeAnswer,
    ProductRequest,
    ProductResponse,
    Question,
    ReferenceRequest,
    S3ObjectRef,
)
from describer_rules.fusion import FusionCalibration, fuse_answers
from describer_rules.model_files import CATALOGUE_FILE, METADATA_FILE
from endpoint import generation, scoring
from endpoint.batching import BatchSettings, RequestBatcher
from endpoint.generation import PromptTokenizer
from endpoint.requests import decode_base64_image, decode_image, image_digest, validation_message
from endpoint.s3_images import S3ImageReader
from endpoint.scoring import CandidateScores
from endpoint.vision_cache import VisionFeatureCache
from endpoint.vision_encoders import load_blip2

logger = logging.getLogger(__name__)


def _device_and_dtype() -> tuple[torch.device, torch.dtype]:
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.device("cpu"), torch.float32


class DescriberModel:
    """A BLIP-2 (Flan-T5 language model) with its processor, catalogue and vision feature cache."""

    def __init__(
        self,
        model: Blip2ForConditionalGeneration,
        processor: Blip2Processor,
        catalogue: Catalogue,
        model_id: str,
        *,
        max_new_tokens: int = MAX_ANSWER_TOKENS,
        cache: VisionFeatureCache | None = None,
        calibration: Calibration | None = None,
        batching: BatchSettings | None = None,
        fusion: FusionCalibration | None = None,
    ) -> None:
        if not model.language_model.config.is_encoder_decoder:
            raise ValueError("the endpoint serves BLIP-2 with an encoder-decoder (Flan-T5) language model")
        self.model = model.eval()
        self.processor = processor
        self.catalogue = catalogue
        self.model_id = model_id
        self.max_new_tokens = max_new_tokens
        self.cache = cache if cache is not None else VisionFeatureCache()
        self.calibration = calibration or Calibration()
        self.fusion = fusion or FusionCalibration()
        # S3 object versions never change: a version seen once names the same bytes (and digest) again.
        self._version_digests: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._versions_lock = threading.Lock()
        self.tokenizer = PromptTokenizer(processor.tokenizer)
        self.s3_images = S3ImageReader()
        # Concurrent requests share vision passes and scoring batches (endpoint/batching.py).
        self.batcher = RequestBatcher(self, batching) if batching and batching.enabled else None

    @classmethod
    def load(cls, model_dir: str | Path, **options: Any) -> DescriberModel:
        root = Path(model_dir)
        device, dtype = _device_and_dtype()
        model = load_blip2(root, dtype=dtype)
        model.to(device)  # type: ignore[arg-type]  # transformers' stub types .to() for dtypes only
        processor = Blip2Processor.from_pretrained(root)
        catalogue = load_catalogue(root / CATALOGUE_FILE)
        metadata_path = root / METADATA_FILE
        metadata = json.loads(metadata_path.read_text(encoding="utf-8")) if metadata_path.exists() else {}
        model_id = str(metadata.get("model_id") or root.name)
        try:
            calibration = Calibration.model_validate(metadata.get("calibration") or {})
            fusion = FusionCalibration.model_validate(metadata.get("fusion") or {})
        except ValidationError as error:
            raise ValueError(f"{metadata_path}: calibration: {validation_message(error)}") from None
        logger.info(
            "loaded model %s on %s (%s), temperature %.3f", model_id, device, dtype, calibration.temperature
        )
        batching = BatchSettings.resolve(metadata)
        return cls(
            model,
            processor,
            catalogue,
            model_id,
            calibration=calibration,
            fusion=fusion,
            batching=batching,
            **options,
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    # The two halves of BLIP-2 inference.

    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """The vision pass: encoder, Q-Former and projection -> (1, query tokens, text width)."""
        return self.encode_pixels(self.pixel_values(image))

    def pixel_values(self, image: Image.Image) -> torch.Tensor:
        """The image preprocessed for the vision encoder -> (1, channels, height, width)."""
        pixel_values = self.processor.image_processor(images=image, return_tensors="pt").pixel_values
        return pixel_values.to(self.device, self.model.dtype)

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The vision pass of a batch of preprocessed images -> (images, query tokens, text width)."""
        features = self.model.get_image_features(pixel_values=pixel_values, return_dict=True).pooler_output
        return features

    def generate_answers(self, features: torch.Tensor, prompts: Sequence[str]) -> list[str]:
        """Greedy answers to ``prompts`` about one image, decoded as one batch."""
        return generation.generate_answers(self.model, self.tokenizer, features, prompts, self.max_new_tokens)

    def score_candidates(
        self, features: torch.Tensor, prompts: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """Summed log-likelihood of each candidate answer text to its prompt (``endpoint.scoring``)."""
        return scoring.score_candidates(self.model, self.tokenizer, features, prompts, candidates)

    def image_features(self, data: bytes) -> tuple[str, torch.Tensor]:
        """(sha256, features) of an image; the vision pass runs only on a cache miss."""
        digest = image_digest(data)
        encode = self.batcher.encode_image if self.batcher else self.encode_image
        return digest, self.cache.get_or_compute(digest, lambda: encode(decode_image(data)))

    # Requests.

    def answer_reference(self, request: ReferenceRequest) -> dict[str, str]:
        """``{"<Attribute>": "<value>"}`` as the reference endpoint answered."""
        _, features = self.image_features(decode_base64_image(request.image))
        [raw] = self.generate_answers(features, [request.prompt])
        return self.reference_answer(request.prompt, raw)

    def reference_answer(self, prompt: str, raw: str) -> dict[str, str]:
        """The attribute the prompt asks about (else the one the answer names) -> normalised value."""
        attribute = self._attribute_asked(prompt) or self._attribute_named(raw.partition(":")[0])
        if attribute is None:
            return {"answer": raw}
        parsed = parse_answer(raw, attribute)
        return {parsed.attribute: parsed.value}

    def answer_product(self, request: ProductRequest) -> ProductResponse:
        started = time.perf_counter()
        if request.images_s3:
            return self.answer_photos(request)
        digest, features = self.s3_image_features(request.image_s3)
        return self._respond(started, digest, features, request.questions, request.category)

    def answer_photos(self, request: ProductRequest) -> ProductResponse:
        """Several photos of one product: each photo's vision pass once (cached), every attribute
        scored on every photo and fused into one answer (``describer_rules.fusion``)."""
        digests, per_photo = [], []
        for ref in request.photos:
            digest, features = self.s3_image_features(ref)
            digests.append(digest)
            per_photo.append(self.score_and_answer(features, request.questions, request.category))
        answers = fuse_answers(per_photo, self.calibration.temperature, self.fusion)
        return ProductResponse(
            answers=answers, image_digest=digests[0], image_digests=digests, model_id=self.model_id
        )

    def s3_image_features(self, ref: S3ObjectRef) -> tuple[str, torch.Tensor]:
        """(sha256, features) of an S3 image; a version whose features are cached is not read again.

        The pipeline asks about one image version in several calls: only the first reads the object.
        """
        version = (ref.bucket, ref.key, ref.version_id) if ref.version_id else None
        with self._versions_lock:
            digest = self._version_digests.get(version) if version else None
        features = self.cache.peek(digest) if digest else None
        if digest is not None and features is not None:
            return digest, features
        digest, features = self.image_features(self.s3_images.read(ref))
        if version is not None:
            with self._versions_lock:
                self._version_digests[version] = digest
                self._version_digests.move_to_end(version)
                while len(self._version_digests) > self.cache.max_entries:
                    self._version_digests.popitem(last=False)
        return digest, features

    def describe_image(
        self, data: bytes, questions: Sequence[Question], category: str | None
    ) -> ProductResponse:
        started = time.perf_counter()
        digest, features = self.image_features(data)
        return self._respond(started, digest, features, questions, category)

    def _respond(
        self,
        started: float,
        digest: str,
        features: torch.Tensor,
        questions: Sequence[Question],
        category: str | None,
    ) -> ProductResponse:
        answers, _ = self.score_and_answer(features, questions, category)
        logger.info(
            "answered %d questions about image %s in %.0f ms",
            len(questions),
            digest[:12],
            (time.perf_counter() - started) * 1000,
        )
        return ProductResponse(answers=answers, image_digest=digest, model_id=self.model_id)

    def score_and_answer(
        self, features: torch.Tensor, questions: Sequence[Question], category: str | None
    ) -> tuple[list[AttributeAnswer], list[CandidateScores | None]]:
        """Answers in question order, and the candidate scores of each scored one (None: generated).

        Questions about an attribute with a vocabulary are scored, the others generated.
        """
        specs = [self._attribute_spec(category, question.attribute) for question in questions]
        scored = [index for index, spec in enumerate(specs) if spec.values]
        generated = [index for index, spec in enumerate(specs) if not spec.values]
        candidates: list[CandidateScores | None] = [None] * len(questions)
        answers: dict[int, AttributeAnswer] = {}
        if scored:
            values = [list(specs[index].values) for index in scored]
            texts = [
                [format_answer(specs[index].name, value) for value in options]
                for index, options in zip(scored, values, strict=True)
            ]
            score = self.batcher.score_candidates if self.batcher else self.score_candidates
            scores = score(features, [questions[index].question for index in scored], texts)
            for index, options, option_scores in zip(scored, values, scores, strict=True):
                candidates[index] = CandidateScores(specs[index].name, options, option_scores)
                answers[index] = self.scored_answer(specs[index].name, options, option_scores, category)
        if generated:
            raws = self.generate_answers(features, [questions[index].question for index in generated])
            for index, raw in zip(generated, raws, strict=True):
                answers[index] = AttributeAnswer(**parse_answer(raw, specs[index]).model_dump())
        return [answers[index] for index in range(len(questions))], candidates

    def scored_answer(
        self, attribute: str, values: Sequence[str], scores: Sequence[float], category: str | None = None
    ) -> AttributeAnswer:
        """The most probable value at the attribute's calibrated temperature, with its runners-up."""
        return scoring.scored_answer(attribute, values, scores, self.calibration, category)

    # The catalogue the model was trained with decides what an answer means.

    def _attribute_asked(self, prompt: str) -> AttributeSpec | None:
        key = normalise_token(prompt)
        for category in self.catalogue.categories:
            for attribute in category.attributes:
                if normalise_token(category.question_for(attribute)) == key:
                    return attribute
        return None

    def _attribute_named(self, name: str) -> AttributeSpec | None:
        key = normalise_token(name)
        for category in self.catalogue.categories:
            for attribute in category.attributes:
                if normalise_token(attribute.name) == key:
                    return attribute
        return None

    def _attribute_spec(self, category: str | None, name: str) -> AttributeSpec:
        spec = self.catalogue.category(category)
        try:
            return spec.attribute(name)
        except KeyError:
            unlearned = AttributeSpec(name=name, values={})  # generated, kept raw, unknown: review
            if spec.name != GENERIC_CATEGORY:
                # The model knows the category but never learned this attribute of it: another
                # category's vocabulary (a handbag's Type for a shoe) would mislabel it with confidence.
                return unlearned
            return self._attribute_named(name) or unlearned
