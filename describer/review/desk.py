"""The review desk's rules: what a reviewer may change, how a review is recorded and announced.

Every review is checked against the version of the record the reviewer opened (its run and its last
write, ``RecordVersion``) and written with one write conditional on that last write: a second
reviewer of the same version, or a newer upload in between, makes it fail and the reviewer is told
(``ChangedSinceOpened``); nothing is lost. The write names the review fields only
(``ResultsTable.write_review``), the ones the reviewer's IAM policy allows. Each review has an id
(``review_id``, carried by the desk's form): a resubmitted form whose review is already the record's
last write is that same review, not a conflict, and its Product Reviewed event is published again
(a lost announcement is retried, never a second review).
A corrected attribute has the product's copy re-written by the pipeline's own writer and validator
(``CopyRewriter``: the WriteDescription Lambda, see ``describer.review.stack``), and copy a reviewer
edits is checked by the same content rules. A refused change (``ReviewRefused``) writes nothing.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from describer_aws.product_events import ProductEvents
from describer_aws.results_table import RecordVersion, ResultsTable, utc_now
from describer_rules.catalogue import Catalogue, CategorySpec, load_catalogue
from describer_rules.content_rules import violations
from describer_rules.contracts import (
    ImageStatus,
    LocaleContent,
    ProductEventType,
    ProductRecord,
    Review,
    ReviewChange,
    ReviewStatus,
    Status,
    TokenUsage,
)
from describer_rules.errors import TransientError
from describer_rules.style_guide import StyleGuide
from describer_steps.settings import DescriptionSettings
from describer_steps.states import DescriptionResult
from describer_steps.write_description import CopyWriter

MAX_REASON_CHARS = 1000
REVIEW_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
COPY_PARTS = ("title", "description", "bullets", "keywords", "meta_description")


class ReviewRefused(ValueError):
    """A review that cannot be recorded as asked; the message names what is wrong. Nothing was written."""


class RecordGone(ReviewRefused):
    def __init__(self, product_id: str) -> None:
        super().__init__(f"product {product_id!r} no longer exists")
        self.product_id = product_id


class ChangedSinceOpened(Exception):
    """The record changed after the reviewer opened it (another review, a newer upload)."""

    def __init__(self, current: ProductRecord) -> None:
        super().__init__(
            f"product {current.product_id!r} changed since you opened it (now {current.status.value}, "
            f"updated {current.updated_at})"
        )
        self.current = current


class ReviewNotAnnounced(Exception):
    """The review was written, but the Product Reviewed event could not be published: resubmitting
    the same review (its ``review_id``) or ``ReviewDesk.announce`` publishes it again."""

    def __init__(self, record: ProductRecord, error: Exception) -> None:
        super().__init__(
            f"the review of {record.product_id!r} is recorded, but its Product Reviewed event could not "
            f"be published ({error})"
        )
        self.record = record


class CopyRewriter(Protocol):
    """Re-writes a product's copy from corrected attributes, as the pipeline's writing step does."""

    def rewrite(self, record: ProductRecord, attributes: Mapping[str, str]) -> DescriptionResult: ...


def attributes_to_review(record: ProductRecord, threshold: float) -> list[str]:
    """The attributes that put the record in the queue: outside the vocabulary or below the threshold."""
    return [
        name
        for name in record.attributes
        if name in record.unknown_attributes or record.confidence.get(name, 1.0) < threshold
    ]


def new_review_id() -> str:
    return secrets.token_urlsafe(16)


def photos_of(record: ProductRecord) -> list[tuple[str, str]]:
    """(key, version) of each photo the record used, the primary first; its source object when it
    lists none (a record of one photo)."""
    used = [
        (image.key, image.version or "null") for image in record.images if image.status == ImageStatus.USED
    ]
    used.sort(key=lambda photo: photo[0] != record.primary_image)
    return used or [(record.source_key, record.source_version)]


@dataclass(frozen=True)
class QueueEntry:
    record: ProductRecord
    to_review: list[str]


@dataclass(frozen=True)
class ReviewQueue:
    """The records needing review, oldest first, with counts per category and per attribute."""

    entries: list[QueueEntry]
    total: int
    by_category: dict[str, int] = field(default_factory=dict)
    by_attribute: dict[str, int] = field(default_factory=dict)


def review_queue(
    records: list[ProductRecord], threshold: float, category: str | None = None, attribute: str | None = None
) -> ReviewQueue:
    """``records`` (oldest first) filtered by category and by an attribute to review; counts of all."""
    entries = [QueueEntry(record, attributes_to_review(record, threshold)) for record in records]
    by_category = Counter(entry.record.category for entry in entries)
    by_attribute = Counter(name for entry in entries for name in entry.to_review)
    shown = [
        entry
        for entry in entries
        if (not category or entry.record.category == category)
        and (not attribute or attribute in entry.to_review)
    ]
    return ReviewQueue(
        entries=shown,
        total=len(entries),
        by_category=dict(sorted(by_category.items())),
        by_attribute=dict(sorted(by_attribute.items())),
    )


def later_than(updated_at: str) -> str:
    """Now, as the record's ``updated_at``, never equal to the version it replaces (same millisecond)."""
    now = utc_now()
    while now == updated_at:
        time.sleep(0.001)
        now = utc_now()
    return now


class ReviewDesk:
    def __init__(
        self,
        table: ResultsTable,
        events: ProductEvents,
        rewriter: CopyRewriter,
        settings: DescriptionSettings,
        reviewer: str,
        needing_review: Callable[[], list[ProductRecord]],
        style: StyleGuide | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.table = table
        self.events = events
        self.rewriter = rewriter
        self.settings = settings
        self.reviewer = reviewer
        self._needing_review = needing_review
        self.style = style
        self.catalogue = catalogue or load_catalogue()
        # product id -> review id: reviews written whose event could not be published yet.
        self._unannounced: dict[str, str] = {}
        self._unannounced_lock = threading.Lock()

    # --- Reading -------------------------------------------------------------------------------

    def queue(self, category: str | None = None, attribute: str | None = None) -> ReviewQueue:
        return review_queue(self._needing_review(), self.settings.review_threshold, category, attribute)

    def open(self, product_id: str) -> ProductRecord:
        record = self.table.get(product_id)
        if record is None:
            raise RecordGone(product_id)
        return record

    def category(self, record: ProductRecord) -> CategorySpec:
        return self.catalogue.category(record.category)

    def vocabulary(self, record: ProductRecord, attribute: str) -> list[str]:
        """The catalogue values ``attribute`` may take for this record's category (empty: not in it)."""
        try:
            return list(self.category(record).attribute(attribute).values)
        except KeyError:
            return []

    # --- Deciding ------------------------------------------------------------------------------

    def accept(self, product_id: str, opened: RecordVersion, review_id: str | None = None) -> ProductRecord:
        return self._decide(product_id, opened, review_id, lambda record: (record, ReviewStatus.ACCEPTED, {}))

    def reject(
        self, product_id: str, opened: RecordVersion, reason: str, review_id: str | None = None
    ) -> ProductRecord:
        reason = reason.strip()
        if not reason:
            raise ReviewRefused("a rejection needs a reason")
        if len(reason) > MAX_REASON_CHARS:
            raise ReviewRefused(f"the reason is {len(reason)} characters; at most {MAX_REASON_CHARS}")
        return self._decide(
            product_id, opened, review_id, lambda record: (record, ReviewStatus.REJECTED, {"reason": reason})
        )

    def correct(
        self,
        product_id: str,
        opened: RecordVersion,
        attributes: Mapping[str, str],
        content: Mapping[str, LocaleContent],
        review_id: str | None = None,
    ) -> ProductRecord:
        """Apply the reviewer's attribute values and copy; a changed attribute re-writes the copy."""
        return self._decide(
            product_id, opened, review_id, lambda record: self._corrected(record, attributes, content)
        )

    def announce(self, product_id: str, review_id: str) -> ProductRecord:
        """Publish the Product Reviewed event of review ``review_id`` again (it was not announced);
        ChangedSinceOpened when that review is no longer the record's last write (what replaced it
        has its own event)."""
        current = self.open(product_id)
        if not self._is_last_write(current, review_id):
            raise ChangedSinceOpened(current)
        return self._announce(current)

    def retry_announcements(self) -> int:
        """Publish again the events of this desk's reviews that could not be announced (the desk
        calls this now and then while it runs: a reviewer may have left the page); how many are
        still waiting. A review that is no longer its record's last write needs none any more."""
        with self._unannounced_lock:
            waiting = dict(self._unannounced)
        for product_id, review_id in waiting.items():
            try:
                self.announce(product_id, review_id)
            except (ChangedSinceOpened, RecordGone):
                self._announced(product_id, review_id)
            except (ReviewNotAnnounced, TransientError, ClientError, BotoCoreError):
                continue
        with self._unannounced_lock:
            return len(self._unannounced)

    def _corrected(
        self, record: ProductRecord, attributes: Mapping[str, str], content: Mapping[str, LocaleContent]
    ) -> tuple[ProductRecord, ReviewStatus, dict[str, Any]]:
        corrected, changes = self._corrected_attributes(record, attributes)
        update: dict[str, object] = {}
        if corrected != record.attributes:
            changed = {change.field.removeprefix("attributes.") for change in changes}
            written = self.rewriter.rewrite(record, corrected)
            base_content = written.content
            # The reviewer vouches for every attribute: the copy was written with all of them.
            confidence = {name: value for name, value in record.confidence.items() if name not in changed}
            rules_confidence: dict[str, float] = {}
            update |= {
                "attributes": corrected,
                "confidence": confidence,
                "unknown_attributes": [name for name in record.unknown_attributes if name not in changed],
                "token_usage": _added(record.token_usage, written.token_usage),
                "model_ids": record.model_ids.model_copy(update={"description": written.model_id}),
            }
        else:
            base_content, rules_confidence = record.content, record.confidence
        final_content, copy_changes = self._edited_copy(
            record, base_content, content, corrected, rules_confidence
        )
        changes += copy_changes
        if not changes:
            raise ReviewRefused("nothing was changed: use Accept to accept the record as it is")
        update |= {
            "content": final_content,
            "description": final_content[self._default_locale(record)].description,
        }
        return record.model_copy(update=update), ReviewStatus.CORRECTED, {"changes": changes}

    # --- Helpers -------------------------------------------------------------------------------

    def _decide(
        self,
        product_id: str,
        opened: RecordVersion,
        review_id: str | None,
        decide: Callable[[ProductRecord], tuple[ProductRecord, ReviewStatus, dict[str, Any]]],
    ) -> ProductRecord:
        """Record the review ``decide`` makes of the opened record; a resubmitted review (its id is
        already the record's last write) is announced again instead of being refused as a change."""
        if review_id is not None and not REVIEW_ID.fullmatch(review_id):
            raise ReviewRefused("the form's review id is malformed")
        current = self.open(product_id)
        if self._is_last_write(current, review_id):
            return self._announce(current)
        record, status, decision = decide(self._reviewable(current, opened))
        review = Review(
            status=status,
            reviewer=self.reviewer,
            reviewed_at=later_than(opened.updated_at),
            review_id=review_id or new_review_id(),
            **decision,
        )
        return self._save(record, opened, review)

    def _is_last_write(self, record: ProductRecord, review_id: str | None) -> bool:
        """Whether ``record``'s last write is this reviewer's review ``review_id``."""
        decision = record.review_decision
        return (
            review_id is not None
            and decision is not None
            and decision.review_id == review_id
            and decision.reviewer == self.reviewer
            and decision.reviewed_at == record.updated_at
        )

    def _reviewable(self, record: ProductRecord, opened: RecordVersion) -> ProductRecord:
        product_id = record.product_id
        if record.order_token is None or record.execution_name is None:
            raise ReviewRefused(f"product {product_id!r} has no run to review (no order token)")
        if RecordVersion.of(record) != opened:
            raise ChangedSinceOpened(record)
        if record.status != Status.COMPLETED:
            raise ReviewRefused(
                f"product {product_id!r} is {record.status.value}: only a COMPLETED record is reviewed"
            )
        return record

    def _corrected_attributes(
        self, record: ProductRecord, submitted: Mapping[str, str]
    ) -> tuple[dict[str, str], list[ReviewChange]]:
        category = self.category(record)
        corrected = dict(record.attributes)
        changes: list[ReviewChange] = []
        problems: list[str] = []
        for name, raw in submitted.items():
            value = raw.strip()
            if name not in record.attributes:
                problems.append(f"{name}: the record has no such attribute")
                continue
            if value == record.attributes[name]:
                continue  # unchanged, even when outside the vocabulary (an accepted unknown value)
            try:
                spec = category.attribute(name)
            except KeyError:
                problems.append(f"{name}: not an attribute of {category.name} in the catalogue")
                continue
            canonical = spec.canonical(value) if value else None
            if canonical is None:
                allowed = ", ".join(spec.values)
                problems.append(f"{name}: {value!r} is not a catalogue value (one of: {allowed})")
                continue
            if canonical != record.attributes[name]:
                corrected[name] = canonical
                changes.append(
                    ReviewChange(field=f"attributes.{name}", before=record.attributes[name], after=canonical)
                )
        if problems:
            raise ReviewRefused("; ".join(problems))
        return corrected, changes

    def _edited_copy(
        self,
        record: ProductRecord,
        base: Mapping[str, LocaleContent],
        submitted: Mapping[str, LocaleContent],
        attributes: Mapping[str, str],
        confidence: Mapping[str, float],
    ) -> tuple[dict[str, LocaleContent], list[ReviewChange]]:
        """The copy after the reviewer's edits (fields they changed from what they were shown), checked
        by the pipeline's content rules for the record's attributes."""
        final = dict(base)
        changes: list[ReviewChange] = []
        problems: list[str] = []
        # The pipeline's writer without a client: only its rules, for these attributes and confidences.
        writer = CopyWriter(self.category(record), attributes, confidence, None, self.settings, self.style)
        for locale, edited in submitted.items():
            shown = record.content.get(locale)
            if shown is None or locale not in final:
                problems.append(f"{locale}: the record has no copy in this locale")
                continue
            edits = {
                part: getattr(edited, part)
                for part in COPY_PARTS
                if getattr(edited, part) != getattr(shown, part)
            }
            if not edits:
                continue
            content = final[locale].model_copy(update=edits)
            broken = violations(content, writer.rules(locale))
            if broken:
                problems += [f"{locale}: {violation}" for violation in broken]
                continue
            final[locale] = content
            changes += [
                ReviewChange(field=f"content.{locale}.{part}", before=getattr(shown, part), after=after)
                for part, after in edits.items()
            ]
        if problems:
            raise ReviewRefused("; ".join(problems))
        return final, changes

    def _default_locale(self, record: ProductRecord) -> str:
        if self.settings.default_locale in record.content:
            return self.settings.default_locale
        return next(
            (locale for locale, copy in record.content.items() if copy.description == record.description),
            next(iter(record.content)),
        )

    def _save(self, record: ProductRecord, opened: RecordVersion, review: Review) -> ProductRecord:
        reviewed = record.model_copy(
            update={"needs_review": False, "review_decision": review, "updated_at": review.reviewed_at}
        )
        if not self.table.write_review(reviewed, opened):
            current = self.table.get(record.product_id)
            if current is None:
                raise RecordGone(record.product_id)
            # Our own write, landed before a retry of it was refused (a lost response, retried).
            if self._is_last_write(current, review.review_id):
                return self._announce(current)
            raise ChangedSinceOpened(current)
        return self._announce(reviewed)

    def _announce(self, reviewed: ProductRecord) -> ProductRecord:
        assert reviewed.review_decision is not None and reviewed.review_decision.review_id is not None
        review_id = reviewed.review_decision.review_id
        try:
            self.events.publish(reviewed, ProductEventType.REVIEWED)
        except (TransientError, ClientError, BotoCoreError) as error:
            with self._unannounced_lock:
                self._unannounced[reviewed.product_id] = review_id
            raise ReviewNotAnnounced(reviewed, error) from error
        self._announced(reviewed.product_id, review_id)
        return reviewed

    def _announced(self, product_id: str, review_id: str) -> None:
        with self._unannounced_lock:
            if self._unannounced.get(product_id) == review_id:
                del self._unannounced[product_id]


def _added(usage: Mapping[str, TokenUsage], more: Mapping[str, TokenUsage]) -> dict[str, TokenUsage]:
    locales = list(usage) + [locale for locale in more if locale not in usage]
    return {
        locale: TokenUsage(
            input=usage.get(locale, TokenUsage()).input + more.get(locale, TokenUsage()).input,
            output=usage.get(locale, TokenUsage()).output + more.get(locale, TokenUsage()).output,
        )
        for locale in locales
    }
