"""A self-contained HTML gallery of product records: photo, attributes with their confidence, copy
per locale, status, a "needs review" badge, error. A product with several photos shows every one
(the record's ``images``), a skipped photo marked with its reason, and how many photos agreed on
each attribute.

The copy (title, description, bullets, keywords) of every locale is on the page; a locale switch at
the top shows one locale at a time (a few lines of inline script, no network).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from describer.deployment_commands import category_label
from describer_rules.contracts import LocaleContent, ProductRecord

THUMBNAIL_PIXELS = 192


@dataclass(frozen=True)
class GalleryItem:
    record: ProductRecord
    photo: Path | None = None
    expected: Mapping[str, str] | None = None  # the known truth, where there is one
    photos: Mapping[str, Path] | None = None  # several photos: the local file of each image key


def thumbnail_data_uri(path: Path) -> str | None:
    """A small JPEG of the photo as a data: URI, or None when the file is not a decodable image."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > 50_000_000:
                return None
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=85)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _attributes_html(record: ProductRecord, expected: Mapping[str, str] | None) -> str:
    answered = {**record.attributes, **record.unverified_attributes}
    names = list(answered) or list(expected or {})
    if not names:
        return ""
    rows = []
    for name in names:
        predicted = answered.get(name, "")
        truth = (expected or {}).get(name, "")
        mark = ""
        if truth and predicted:
            mark = ' class="hit"' if truth == predicted else ' class="miss"'
        truth_cell = f"<td class='truth'>{html.escape(truth)}</td>" if expected else ""
        rows.append(
            f"<tr><th>{html.escape(name)}</th><td{mark}>{html.escape(predicted)}</td>"
            f"{_confidence_cell(record, name)}{truth_cell}</tr>"
        )
    header = "<tr><th></th><th>predicted</th><th>confidence</th><th>truth</th></tr>" if expected else ""
    return f"<table>{header}{''.join(rows)}</table>"


def _photos_html(item: GalleryItem) -> str:
    """Every photo of a product with several: thumbnail, file name, and a skipped one's reason."""
    images = item.record.images
    if len(images) < 2 and not item.photos:
        return ""
    figures = []
    for image in images:
        path = (item.photos or {}).get(image.key)
        uri = thumbnail_data_uri(path) if path else None
        name = html.escape(image.key.rsplit("/", 1)[-1])
        picture = f'<img src="{uri}" alt="{name}">' if uri else '<div class="nophoto">no preview</div>'
        reason = f"<br><b>{html.escape((image.reason or '').split(':')[0])}</b>" if image.reason else ""
        figures.append(
            f'<figure class="{image.status.value}" title="{html.escape(image.reason or image.status.value)}">'
            f"{picture}<figcaption>{name}{reason}</figcaption></figure>"
        )
    return f'<div class="photos">{"".join(figures)}</div>'


def _copy_html(locale: str, copy: LocaleContent) -> str:
    bullets = "".join(f"<li>{html.escape(bullet)}</li>" for bullet in copy.bullets)
    keywords = "".join(f'<span class="keyword">{html.escape(keyword)}</span>' for keyword in copy.keywords)
    return (
        f'<section class="copy" data-locale="{html.escape(locale)}" lang="{html.escape(locale)}">'
        f'<h3>{html.escape(copy.title)} <span class="locale">{html.escape(locale)}</span></h3>'
        f'<p class="description">{html.escape(copy.description)}</p><ul>{bullets}</ul>'
        f'<p class="keywords">{keywords}</p></section>'
    )


def _locale_switch(locales: Sequence[str]) -> str:
    """A select that shows one locale's copy; CSS rules per locale hide the others."""
    if len(locales) < 2:
        return ""
    options = "".join(f'<option value="{html.escape(loc)}">{html.escape(loc)}</option>' for loc in locales)
    rules = "".join(
        f'body[data-locale="{loc}"] .copy:not([data-locale="{loc}"]) {{ display: none; }}' for loc in locales
    )
    return (
        f"<style>{rules}</style><label class='switch'>Locale "
        f"<select onchange='document.body.dataset.locale = this.value'>{options}</select></label>"
    )


def _confidence_cell(record: ProductRecord, name: str) -> str:
    if name in record.unknown_attributes:
        return "<td class='confidence unknown'>unknown</td>"
    if name in record.unverified_attributes:  # generated: not in the copy
        return "<td class='confidence unknown'>unverified</td>"
    confidence = record.confidence.get(name)
    agreed = record.photos_agreed.get(name)
    used = sum(1 for image in record.images if image.status.value == "used")
    votes = f" <span class='agreed'>{agreed}/{used} photos</span>" if agreed is not None else ""
    return f"<td class='confidence'>{'' if confidence is None else f'{confidence:.2f}'}{votes}</td>"


def _card(item: GalleryItem) -> str:
    record = item.record
    primary = (item.photos or {}).get(record.primary_image or "") or item.photo
    uri = thumbnail_data_uri(primary) if primary else None
    name = html.escape(primary.name if primary else record.source_key)
    photo = f'<img src="{uri}" alt="{name}">' if uri else f'<div class="nophoto">{name}<br>(no preview)</div>'
    error = (
        f'<p class="error"><b>{record.error_code.value}</b> {html.escape(record.error_message or "")}</p>'
        if record.error_code
        else ""
    )
    if record.content:
        description = "".join(_copy_html(locale, copy) for locale, copy in record.content.items())
    elif record.description:
        description = f'<p class="description">{html.escape(record.description)}</p>'
    else:
        description = ""
    model = html.escape(record.model_ids.description or "")
    review = '<span class="review">needs review</span>' if record.needs_review else ""
    return (
        f'<article class="{record.status.value.lower()}"><div class="top">{photo}<div>'
        f"<h2>{html.escape(record.product_id)} "
        f'<span class="category">{html.escape(category_label(record))}</span></h2>'
        f'<span class="status">{record.status.value}</span>{review}'
        f'<p class="meta">{html.escape(record.source_key)}{"<br>written by " + model if model else ""}</p>'
        f"</div></div>{_photos_html(item)}{_attributes_html(record, item.expected)}{description}{error}"
        "</article>"
    )


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; background: #f4f4f6; color: #222; }
h1 { margin: 0 0 4px; } .summary { color: #555; margin-bottom: 16px; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; }
article { background: #fff; border-radius: 8px; padding: 10px; border-left: 6px solid #999;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
article.completed { border-color: #2e9d5b; } article.failed { border-color: #d2453d; }
.top { display: flex; gap: 10px; margin-bottom: 6px; }
article img, .nophoto { width: 96px; height: 96px; object-fit: contain; flex: none; border-radius: 4px;
          background: #eee; }
.nophoto { display: flex; align-items: center; justify-content: center; text-align: center; color: #777;
          font-size: 12px; }
h2 { font-size: 15px; margin: 0 0 6px; } .category { color: #777; font-weight: normal; margin-left: 6px; }
.status { font-size: 11px; padding: 2px 6px; border-radius: 4px; background: #eee; }
.completed .status { background: #dff3e6; color: #1d6b3d; }
.failed .status { background: #fbe1df; color: #9d2a23; }
table { border-collapse: collapse; font-size: 12px; margin-bottom: 6px; width: 100%; }
th { text-align: left; color: #666; font-weight: normal; padding-right: 8px; }
td { padding-right: 8px; } td.hit { color: #1d6b3d; } td.miss { color: #b3261e; } td.truth { color: #888; }
td.confidence { color: #888; text-align: right; } td.confidence.unknown { color: #b3261e; }
.review { font-size: 11px; padding: 2px 6px; border-radius: 4px; background: #fff1c2; color: #7a5b00;
          margin-left: 4px; }
.description { margin: 4px 0; font-size: 12px; } .error { color: #9d2a23; margin: 4px 0; }
.meta { color: #999; font-size: 11px; }
.photos { display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 6px; }
.photos figure { margin: 0; width: 64px; font-size: 10px; color: #666; text-align: center; }
.photos img, .photos .nophoto { width: 64px; height: 64px; }
.photos figure.skipped img, .photos figure.skipped .nophoto { opacity: .35; outline: 2px solid #d2453d; }
.photos figure.skipped { color: #9d2a23; } .agreed { color: #aaa; font-size: 10px; }
.copy h3 { font-size: 13px; margin: 6px 0 2px; }
.locale { color: #999; font-weight: normal; font-size: 11px; }
.copy ul { margin: 2px 0; padding-left: 18px; font-size: 12px; }
.keyword { display: inline-block; background: #eef; border-radius: 3px; padding: 0 4px; margin: 1px;
          font-size: 11px; } .switch { float: right; }
"""


def write_gallery(items: Sequence[GalleryItem], out_file: Path, title: str = "Product Describer") -> Path:
    completed = sum(1 for item in items if item.record.status.value == "COMPLETED")
    failed = sum(1 for item in items if item.record.status.value == "FAILED")
    locales = list(dict.fromkeys(locale for item in items for locale in item.record.content))
    body_locale = f" data-locale='{html.escape(locales[0])}'" if locales else ""
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body{body_locale}>{_locale_switch(locales)}"
        f"<h1>{html.escape(title)}</h1>"
        f"<p class='summary'>{len(items)} uploads: {completed} completed, {failed} failed</p>"
        f"<main>{''.join(_card(item) for item in items)}</main></body></html>\n"
    )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(page, encoding="utf-8")
    return out_file
