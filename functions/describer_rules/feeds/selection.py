"""Which records a channel may publish, and each record's copy in one locale."""

from __future__ import annotations

from enum import StrEnum

from describer_rules.contracts import ProductRecord, ReviewStatus, Status


class Skipped(StrEnum):
    """Why a record is not in a feed (the export's summary counts each)."""

    FAILED = "failed"
    PROCESSING = "still processing"
    REJECTED = "rejected by a reviewer"
    AWAITING_REVIEW = "awaiting review"
    NO_LOCALE = "no copy in the locale"
    ID_UNUSABLE = "id unusable in the channel"
    HANDLE_TAKEN = "handle of another product"


_VOUCHED = frozenset({ReviewStatus.ACCEPTED, ReviewStatus.CORRECTED})


def not_exportable(record: ProductRecord, include_unreviewed: bool = False) -> Skipped | None:
    """Why ``record`` may not be published, or None when it may.

    Published: a COMPLETED record that needs no review, or that a reviewer accepted or corrected.
    Never a FAILED, still PROCESSING or rejected one (a rejection leaves ``needs_review`` false, so
    the decision is what says so). A record awaiting review only with ``include_unreviewed``.
    """
    if record.status is Status.FAILED:
        return Skipped.FAILED
    if record.status is not Status.COMPLETED:
        return Skipped.PROCESSING
    decision = record.review_decision.status if record.review_decision is not None else None
    if decision is ReviewStatus.REJECTED:
        return Skipped.REJECTED
    if record.needs_review and decision not in _VOUCHED and not include_unreviewed:
        return Skipped.AWAITING_REVIEW
    return None


def in_locale(record: ProductRecord, locale: str | None) -> ProductRecord:
    """The record with only ``locale``'s content, description and tokens; unchanged without a locale."""
    if locale is None:
        return record
    content = {locale: record.content[locale]} if locale in record.content else {}
    description = content[locale].description if content else None
    token_usage = {loc: usage for loc, usage in record.token_usage.items() if loc == locale}
    return record.model_copy(
        update={"content": content, "description": description, "token_usage": token_usage}
    )
