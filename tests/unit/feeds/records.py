"""Small ProductRecords for the feed tests (no fixture files)."""

from __future__ import annotations

from typing import Any

from describer_rules.contracts import LocaleContent, ProductRecord, Review, ReviewStatus, Status


def copy(**overrides: Any) -> LocaleContent:
    values: dict[str, Any] = {
        "title": "Classic Cotton T-Shirt",
        "description": "A soft cotton T-shirt with short sleeves and a round neck, for every day.",
        "bullets": ["Soft cotton", "Short sleeves", "Round neck"],
        "keywords": ["t-shirt", "cotton tee", "white top"],
        "meta_description": "A soft white cotton T-shirt with short sleeves.",
    }
    return LocaleContent(**(values | overrides))


def record(product_id: str = "tee-1", **overrides: Any) -> ProductRecord:
    values: dict[str, Any] = {
        "product_id": product_id,
        "category": "Tshirts",
        "status": Status.COMPLETED,
        "source_bucket": "uploads",
        "source_key": f"incoming/Tshirts/{product_id}.jpg",
        "source_version": "v1",
        "attributes": {"Colour": "White", "Pattern": "Solid", "Fabric": "Cotton", "Neck": "Round Neck"},
        "content": {"en-US": copy()},
        "created_at": "2026-12-07T10:00:00.000Z",
        "updated_at": "2026-12-07T10:00:00.000Z",
    }
    return ProductRecord(**(values | overrides))


def reviewed(status: ReviewStatus, product_id: str, **overrides: Any) -> ProductRecord:
    decision = Review(
        status=status,
        reviewer="arn:aws:iam::000000000000:user/r",
        reviewed_at="2026-12-07T11:00:00.000Z",
        reason="wrong photo" if status is ReviewStatus.REJECTED else None,
    )
    return record(product_id, review_decision=decision, **overrides)
