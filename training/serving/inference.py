"""Endpoint inference for the product describer: each product image goes through the vision encoder once.

Contract of the SageMaker Hugging Face inference toolkit, used unchanged by the local model host::

    model = model_fn(model_dir)                      # DescriberModel
    request = input_fn(body, content_type)           # ReferenceRequest | ProductRequest
    prediction = predict_fn(request, model)          # JSON-ready dict
    body = output_fn(prediction, accept)             # JSON text

Requests (``application/json``), both from ``describer_core.contracts``:

- ``ReferenceRequest`` ``{"prompt": "<question>", "image": "<base64>"}`` (the reference solution's),
  answered ``{"Sleeve Length": "Long Sleeves"}``;
- ``ProductRequest`` ``{"image_s3": {"bucket", "key", "version_id"?}, "questions": [{"attribute",
  "question"}, ...], "category"?}``, answered with a ``ProductResponse``.

Error contract: everything wrong with a request raises
``describer_core.endpoint_errors.EndpointRequestError`` (re-exported here), a ``ValueError`` with
``.status`` (400 invalid request, 404 S3 object not found, 413 too many questions / image too
large, 415 not JSON, 422 unreadable object or image) and ``.code``; ``str(error)`` is the JSON
error body. A host maps it to ``.status``; the SageMaker toolkit answers any exception with 400 and
``str(error)``, which the caller parses with ``EndpointErrorBody.from_message``. Any other
exception is a server error (5xx).

How the cost goes down: the vision encoder + Q-Former + projection output is computed once per
image and kept in a bounded LRU keyed by the image's sha256, with single-flight (concurrent requests
for one image wait for the first computation); a product request naming an S3 object version whose
features are cached does not read the object again. Nothing here logs payloads or image bytes.

How a product request is answered (``DescriberModel.score_and_answer``, which evaluation calls too):

- a question about an attribute with a vocabulary is *scored*: every allowed value, as the answer
  text the model was trained to produce (``format_answer``: "Sleeve Length: Long Sleeves", end of
  sequence included), gets its summed token log-likelihood given the image and the question,
  teacher-forced. All candidates of all such questions go through the language model's encoder once
  per question and its decoder in one batched pass. A softmax over an attribute's candidates at the
  model's calibrated temperature (``describer_model.json`` ``calibration``) gives ``confidence``; the
  runners-up come back as ``alternatives``;
- any other question (an attribute outside the catalogue) is answered by greedy generation, batched,
  and normalised with ``parse_answer``: ``known`` false, no confidence.

The reference request is answered by greedy generation, as the reference endpoint did.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import torch
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image
from pydantic import BaseModel, ValidationError
from transformers import Blip2ForConditionalGeneration, Blip2Processor

from describer_core.answers import MAX_ANSWER_TOKENS, format_answer, parse_answer
from describer_core.catalogue import (
    GENERIC_CATEGORY,
    AttributeSpec,
    Catalogue,
    load_catalogue,
    normalise_token,
)
from describer_core.confidence import MAX_ALTERNATIVES, Calibration, softmax
from describer_core.contracts import (
    MAX_QUESTIONS_PER_REQUEST,
    Alternative,
    AttributeAnswer,
    ProductRequest,
    ProductResponse,
    Question,
    ReferenceRequest,
    S3ObjectRef,
)
from describer_core.endpoint_errors import EndpointErrorCode, EndpointRequestError
from describer_core.errors import InvalidInput
from describer_core.fusion import FusionCalibration, fuse_answers
from describer_core.images import inspect_image
from describer_core.model_files import CATALOGUE_FILE, METADATA_FILE
from describer_core.settings import ImageSettings

try:  # in the repository
    from training.serving.batching import BatchSettings, RequestBatcher
except ImportError:  # in <model dir>/code/, next to this file, as the container loads it
    from batching import BatchSettings, RequestBatcher  # type: ignore[no-redef]

__all__ = [
    "CandidateScores",
    "DescriberModel",
    "EndpointRequestError",
    "VisionFeatureCache",
    "input_fn",
    "model_fn",
    "output_fn",
    "predict_fn",
]

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
# The same limits as the pipeline's Prepare step, so the two never disagree about an image.
MAX_IMAGE_BYTES = ImageSettings().max_image_bytes
MAX_IMAGE_PIXELS = ImageSettings().max_image_pixels
# Features of one image of blip2-flan-t5-xl: 32 query tokens x 2048 in bf16 = 128 KiB.
CACHE_MAX_ENTRIES = 1024
CACHE_MAX_BYTES = 256 * 1024 * 1024


# --- the vision feature cache ---------------------------------------------------------------------


class VisionFeatureCache:
    """Vision features by image digest: LRU bounded by entries and bytes, thread-safe, single-flight."""

    def __init__(self, max_entries: int = CACHE_MAX_ENTRIES, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._pending: dict[str, Future[torch.Tensor]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.computations = 0
        self.hits = 0
        self.waits = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def get_or_compute(self, digest: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached features for ``digest``; computes them at most once however many threads ask."""
        with self._lock:
            cached = self._entries.get(digest)
            if cached is not None:
                self._entries.move_to_end(digest)
                self.hits += 1
                return cached
            pending = self._pending.get(digest)
            owner = pending is None
            if pending is None:
                pending = self._pending[digest] = Future()
                self.computations += 1
            else:
                self.waits += 1
        if not owner:
            return pending.result()
        try:
            features = compute()
        except BaseException as error:
            # Waiters get the same error; the next request tries again (nothing is cached).
            with self._lock:
                del self._pending[digest]
            pending.set_exception(error)
            raise
        with self._lock:
            self._store(digest, features)
            del self._pending[digest]
        pending.set_result(features)
        return features

    def peek(self, digest: str) -> torch.Tensor | None:
        """The cached features for ``digest``, or None; never computes."""
        with self._lock:
            cached = self._entries.get(digest)
            if cached is not None:
                self._entries.move_to_end(digest)
                self.hits += 1
            return cached

    def _store(self, digest: str, features: torch.Tensor) -> None:
        size = features.numel() * features.element_size()
        if size > self.max_bytes:
            return
        self._entries[digest] = features
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.numel() * evicted.element_size()


# --- request payloads -----------------------------------------------------------------------------


def _validation_message(error: ValidationError) -> str:
    # Field locations and reasons only: pydantic's own str() would quote the input (the image).
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}" for item in error.errors()
    ]
    return "; ".join(problems)


def _validate(model: type[BaseModel], payload: dict[str, Any]) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise EndpointRequestError(EndpointErrorCode.INVALID_REQUEST, _validation_message(error)) from None


def parse_request(payload: object) -> ReferenceRequest | ProductRequest:
    """Which of the two requests ``payload`` is, validated."""
    if not isinstance(payload, dict):
        raise EndpointRequestError(EndpointErrorCode.INVALID_REQUEST, "the body must be a JSON object")
    if "image_s3" in payload or "questions" in payload:
        questions = payload.get("questions")
        if isinstance(questions, list) and len(questions) > MAX_QUESTIONS_PER_REQUEST:
            raise EndpointRequestError(
                EndpointErrorCode.TOO_MANY_QUESTIONS,
                f"{len(questions)} questions; at most {MAX_QUESTIONS_PER_REQUEST} per request",
            )
        request: ProductRequest = _validate(ProductRequest, payload)
        return request
    if "prompt" in payload or "image" in payload:
        reference: ReferenceRequest = _validate(ReferenceRequest, payload)
        return reference
    raise EndpointRequestError(
        EndpointErrorCode.INVALID_REQUEST,
        "expected 'image_s3' and 'questions' (product request) or 'prompt' and 'image' (reference request)",
    )


def decode_base64_image(text: str) -> bytes:
    compact = "".join(text.split())
    if len(compact) > (MAX_IMAGE_BYTES + 2) // 3 * 4:
        raise EndpointRequestError(
            EndpointErrorCode.IMAGE_TOO_LARGE, f"the image is larger than {MAX_IMAGE_BYTES} bytes"
        )
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise EndpointRequestError(EndpointErrorCode.INVALID_REQUEST, "image: not valid base64") from None


def decode_image(data: bytes) -> Image.Image:
    """The image as RGB once it passes the pipeline's own image rule; a client error otherwise."""
    try:
        inspect_image(data, max_bytes=MAX_IMAGE_BYTES, max_pixels=MAX_IMAGE_PIXELS)
    except InvalidInput as rejected:
        raise EndpointRequestError(EndpointErrorCode(rejected.code.value), rejected.detail) from None
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def image_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateScores:
    """A scored question: the attribute's values and their summed log-likelihoods."""

    attribute: str
    values: list[str]
    scores: list[float]


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
        self._s3_client: Any = None
        self._s3_lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        # Concurrent requests share vision passes and scoring batches (training/serving/batching.py).
        self.batcher = RequestBatcher(self, batching) if batching and batching.enabled else None

    @classmethod
    def load(cls, model_dir: str | Path, **options: Any) -> DescriberModel:
        root = Path(model_dir)
        device, dtype = _device_and_dtype()
        model = Blip2ForConditionalGeneration.from_pretrained(root, dtype=dtype)
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
            raise ValueError(f"{metadata_path}: calibration: {_validation_message(error)}") from None
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

    @torch.inference_mode()
    def generate_answers(self, features: torch.Tensor, prompts: Sequence[str]) -> list[str]:
        """Greedy answers to ``prompts`` about one image, decoded as one batch.

        The same token layout as ``Blip2Processor`` + ``Blip2ForConditionalGeneration.generate``:
        the query features take the place of the image tokens in front of the tokenized prompt.
        """
        inputs_embeds, attention_mask = self._prefix_inputs(features, prompts)
        output = self.model.language_model.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
        )
        return [
            text.strip() for text in self.processor.tokenizer.batch_decode(output, skip_special_tokens=True)
        ]

    def _prefix_inputs(
        self, features: torch.Tensor, prompts: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The language model's input: query features in front of each right-padded prompt."""
        tokenizer = self.processor.tokenizer
        # A fast tokenizer's padding state lives in one Rust object: concurrent calls must take turns.
        # Right padding keeps every prompt at the positions it has alone, as in the reference path.
        with self._tokenizer_lock:
            tokens = tokenizer(list(prompts), padding=True, padding_side="right", return_tensors="pt")
        tokens = tokens.to(self.device)
        text_embeds = self.model.language_model.get_input_embeddings()(tokens.input_ids)
        image_embeds = features.to(text_embeds.dtype).expand(len(prompts), -1, -1)
        image_mask = torch.ones(image_embeds.shape[:2], dtype=tokens.attention_mask.dtype, device=self.device)
        return (
            torch.cat([image_embeds, text_embeds], dim=1),
            torch.cat([image_mask, tokens.attention_mask], dim=1),
        )

    @torch.inference_mode()
    def score_candidates(
        self, features: torch.Tensor, prompts: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """Summed log-likelihood of each candidate answer text to its prompt about one image.

        Teacher-forced, tokenized as training tokenized its targets (end of sequence included). The
        encoder runs once per prompt; every candidate of every prompt is decoded in one batch. The
        sum, not the per-token mean: the tokens an attribute's candidates share ("Sleeve Length:")
        then add the same amount to each and cancel in the softmax, and the end-of-sequence token
        keeps a value apart from a longer one it begins ("Slim" / "Slim Fit").
        """
        language_model = self.model.language_model
        inputs_embeds, attention_mask = self._prefix_inputs(features, prompts)
        encoded = language_model.get_encoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        owner = torch.tensor(
            [index for index, texts in enumerate(candidates) for _ in texts],
            dtype=torch.long,
            device=self.device,
        )
        tokenizer = self.processor.tokenizer
        with self._tokenizer_lock:
            targets = tokenizer(
                [text for texts in candidates for text in texts],
                padding=True,
                padding_side="right",
                return_tensors="pt",
            ).to(self.device)
        labels = targets.input_ids.masked_fill(targets.attention_mask == 0, -100)
        output = language_model(
            encoder_outputs=(encoded.last_hidden_state[owner],),
            attention_mask=attention_mask[owner],
            decoder_input_ids=language_model.prepare_decoder_input_ids_from_labels(labels=labels),
        )
        token_scores = output.logits.float().log_softmax(dim=-1)
        token_scores = token_scores.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        sums = (token_scores * targets.attention_mask).sum(dim=-1).tolist()
        scores: list[list[float]] = []
        for texts in candidates:
            scores.append(sums[: len(texts)])
            sums = sums[len(texts) :]
        return scores

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
        scored on every photo and fused into one answer (``describer_core.fusion``)."""
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
        with self._s3_lock:
            digest = self._version_digests.get(version) if version else None
        features = self.cache.peek(digest) if digest else None
        if digest is not None and features is not None:
            return digest, features
        digest, features = self.image_features(self.read_s3_image(ref))
        if version is not None:
            with self._s3_lock:
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
        probabilities = softmax(scores, self.calibration.temperature_for(attribute, category))
        ranked = sorted(zip(probabilities, values, strict=True), key=lambda pair: -pair[0])
        (confidence, value), runners_up = ranked[0], ranked[1 : 1 + MAX_ALTERNATIVES]
        return AttributeAnswer(
            attribute=attribute,
            value=value,
            raw=format_answer(attribute, value),
            known=True,
            confidence=confidence,
            alternatives=[Alternative(value=other, confidence=p) for p, other in runners_up],
        )

    def read_s3_image(self, ref: S3ObjectRef) -> bytes:
        """The object's bytes, at most MAX_IMAGE_BYTES; client errors for missing or unreadable ones."""
        params = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            params["VersionId"] = ref.version_id
        try:
            response = self._s3().get_object(**params)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in {"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "404", "NotFound"}:
                raise EndpointRequestError(
                    EndpointErrorCode.OBJECT_NOT_FOUND, f"S3 object not found ({code})"
                ) from None
            raise EndpointRequestError(
                EndpointErrorCode.OBJECT_UNREADABLE, f"S3 refused the read ({code})"
            ) from None
        body = response["Body"]
        try:
            if response.get("ContentLength", 0) > MAX_IMAGE_BYTES:
                raise EndpointRequestError(
                    EndpointErrorCode.IMAGE_TOO_LARGE, f"the object is over {MAX_IMAGE_BYTES} bytes"
                )
            data: bytes = body.read(MAX_IMAGE_BYTES + 1)
        finally:
            body.close()
        if len(data) > MAX_IMAGE_BYTES:
            raise EndpointRequestError(
                EndpointErrorCode.IMAGE_TOO_LARGE, f"the object is over {MAX_IMAGE_BYTES} bytes"
            )
        return data

    def _s3(self) -> Any:
        # One client per model, created on first use; the endpoint URL comes from the environment.
        with self._s3_lock:
            if self._s3_client is None:
                config = Config(
                    connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3}
                )
                self._s3_client = boto3.session.Session().client("s3", config=config)
            return self._s3_client

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


# --- the SageMaker Hugging Face inference toolkit's four functions ---------------------------------


def model_fn(model_dir: str) -> DescriberModel:
    return DescriberModel.load(model_dir)


def input_fn(body: bytes | bytearray | str, content_type: str | None) -> ReferenceRequest | ProductRequest:
    media_type = (content_type or JSON_CONTENT_TYPE).split(";")[0].strip().lower()
    if media_type != JSON_CONTENT_TYPE:
        raise EndpointRequestError(
            EndpointErrorCode.UNSUPPORTED_MEDIA_TYPE, f"Content-Type must be {JSON_CONTENT_TYPE}"
        )
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EndpointRequestError(EndpointErrorCode.INVALID_REQUEST, "the body is not valid JSON") from None
    return parse_request(payload)


def predict_fn(data: ReferenceRequest | ProductRequest, model: DescriberModel) -> dict[str, Any]:
    if model.batcher is not None:
        with model.batcher.request():
            return _predict(data, model)
    return _predict(data, model)


def _predict(data: ReferenceRequest | ProductRequest, model: DescriberModel) -> dict[str, Any]:
    if isinstance(data, ProductRequest):
        return model.answer_product(data).model_dump(mode="json")
    return dict(model.answer_reference(data))


def output_fn(prediction: dict[str, Any], accept: str | None) -> str:
    media_types = {part.split(";")[0].strip().lower() for part in (accept or "").split(",")} - {""}
    if media_types and not media_types & {JSON_CONTENT_TYPE, "application/*", "*/*"}:
        raise EndpointRequestError(
            EndpointErrorCode.UNSUPPORTED_MEDIA_TYPE, f"Accept must allow {JSON_CONTENT_TYPE}"
        )
    return json.dumps(prediction, ensure_ascii=False)
