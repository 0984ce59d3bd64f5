"""MergeAttributes: the Map's answers become one ``{attribute: value}`` object with confidences.

Only a scored answer, one with a calibrated confidence, is a fact: it goes in ``attributes``, which
WriteDescription turns into copy. A generated answer (the model was not trained to score that
attribute, or its value is outside the vocabulary) has no confidence: it is kept apart in
``unverified_attributes`` for a reviewer, never reaches the copy (text printed on a photo could
otherwise steer the prompt), and the product needs review.
"""

from __future__ import annotations

from describer_rules.confidence import needs_review, rounded
from describer_rules.contracts import Alternative
from describer_steps.states import AskOutput, MergedAttributes


def merge_attributes(outputs: list[AskOutput], review_threshold: float) -> MergedAttributes:
    """One ``{attribute: value}`` object with each value's confidence, and whether it needs review."""
    answers = [answer for output in outputs for answer in output.answers]
    confidence = {
        answer.attribute: rounded(answer.confidence) for answer in answers if answer.confidence is not None
    }
    attributes = {
        answer.attribute: answer.value
        for answer in answers
        if answer.value and answer.attribute in confidence
    }
    unverified = {
        answer.attribute: answer.value
        for answer in answers
        if answer.value and answer.attribute not in confidence
    }
    unknown = sorted({answer.attribute for answer in answers if not answer.known})
    alternatives = {
        answer.attribute: [
            Alternative(value=other.value, confidence=rounded(other.confidence))
            for other in answer.alternatives
        ]
        for answer in answers
        if answer.alternatives
    }
    unscored = sorted(set(unverified) - set(unknown))
    agreed = {
        answer.attribute: answer.photos_agreed for answer in answers if answer.photos_agreed is not None
    }
    return MergedAttributes(
        attributes=attributes,
        unverified_attributes=unverified,
        unknown_attributes=unknown,
        confidence=confidence,
        alternatives=alternatives,
        photos_agreed=agreed,
        needs_review=needs_review(confidence, unknown, review_threshold, unscored),
        endpoint=outputs[0].endpoint if outputs else None,
        endpoint_ms=sum(output.endpoint_ms for output in outputs),
        endpoint_calls=len(outputs),
        endpoint_wall_ms=_wall_ms(outputs),
    )


def _wall_ms(outputs: list[AskOutput]) -> int:
    """From the first call's start to the last call's end (the Map runs calls side by side)."""
    if not outputs:
        return 0
    first = min(output.started_ms for output in outputs)
    return max(output.started_ms + output.endpoint_ms for output in outputs) - first
