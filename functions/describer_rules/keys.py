"""Object keys: decoding them, reading product id and category from them, naming executions.

Two conventions, under the upload prefix (or the backfill prefix: ``catalogue/Shirts/15970.jpg``):

- one photo per product: ``<prefix>[<Category>/]<product id>.<extension>``, e.g.
  ``incoming/Shirts/15970.jpg``. The folder right above the file names the category (none, or one
  the catalogue does not know, means the generic question set); the file name without its
  extension is the product id;
- several photos per product: ``<prefix><Category>/<product id>/<any name>.<extension>``, e.g.
  ``incoming/Shirts/15970/back.jpg``: the folder is the product (``product_folder``). A key is in a
  product folder when it has at least two folders below the prefix and the one right above the file
  is not a catalogue category (so ``incoming/brand/Tshirts/tee.jpg`` is still the one-photo product
  ``tee``). A photo deeper down (``incoming/Shirts/15970/old/x.jpg``) belongs to that product's
  folder but is skipped (``NESTED_FOLDER``).

S3 object metadata ``product-id`` and ``category`` take precedence over both.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import unquote_plus

from pydantic import BaseModel

from describer_rules.contracts import CategorySource, ErrorCode
from describer_rules.errors import InvalidInput

PRODUCT_ID_METADATA = "product-id"
CATEGORY_METADATA = "category"
MAX_PRODUCT_ID_LENGTH = 200
EXECUTION_NAME_LIMIT = 80
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class KeyParts(BaseModel):
    product_id: str
    category_hint: str | None
    category_source: CategorySource | None = None  # where category_hint came from


def _no_category(_: str) -> bool:
    return False


def _convention_start(key: str, prefixes: str | tuple[str, ...]) -> str:
    """The longest of ``prefixes`` that ``key`` starts with; INVALID_KEY when none does."""
    candidates = (prefixes,) if isinstance(prefixes, str) else prefixes
    matching = [prefix for prefix in candidates if key.startswith(prefix)]
    if not matching:
        names = ", ".join(map(repr, candidates))
        raise InvalidInput(f"key is outside the prefixes {names}", ErrorCode.INVALID_KEY)
    return max(matching, key=len)


def product_folder(
    key: str, prefixes: str | tuple[str, ...], is_category: Callable[[str], bool] = _no_category
) -> str | None:
    """``<prefix><Category>/<product id>/`` when ``key`` is a photo (or the folder) of a product with
    several photos; None for the one-photo convention. ``is_category``: names the catalogue knows."""
    prefix = _convention_start(key, prefixes)
    folders = [name for name in key[len(prefix) :].rpartition("/")[0].split("/")]
    if len(folders) < 2 or not all(folders[:2]) or is_category(folders[-1]):
        return None
    return f"{prefix}{folders[0]}/{folders[1]}/"


def is_nested(key: str, folder: str) -> bool:
    """True for a key in a sub-folder of the product folder ``folder``."""
    return "/" in key[len(folder) :]


def photo_set_execution_name(bucket: str, folder: str, photos: Sequence[tuple[str, str]], order: str) -> str:
    """The execution name of one state of a product folder: the same for every event that saw it.

    ``photos``: (key, version) of every photo listed; ``order``: the listing's order token, so that
    a folder emptied twice (or restored to an earlier set) is a new state, not a duplicate.
    """
    listing = "\0".join(f"{key}\0{version}" for key, version in sorted(photos))
    digest = hashlib.sha256(f"{bucket}\0{folder}\0{order}\0{listing}".encode()).hexdigest()[:40]
    stem = _NAME_UNSAFE.sub("-", folder.rstrip("/").rsplit("/", 1)[-1]).strip("-")
    stem = stem[: EXECUTION_NAME_LIMIT - len(digest) - 5]
    return f"{stem}-set-{digest}" if stem else f"set-{digest}"


def key_candidates(event_key: str) -> list[str]:
    """Keys an event's ``key`` may stand for, most likely first.

    S3 URL-encodes keys in event notifications (a space arrives as ``+``). An emulator may not,
    so the key exactly as received is the fallback the caller tries when the decoded one is missing.
    """
    try:
        decoded = unquote_plus(event_key, errors="strict")
    except UnicodeDecodeError:
        raise InvalidInput("the key's percent-encoding is not UTF-8", ErrorCode.INVALID_KEY) from None
    return [decoded] if decoded == event_key else [decoded, event_key]


def identify(
    key: str,
    prefixes: str | tuple[str, ...],
    metadata: Mapping[str, str],
    category: str | None = None,
    is_category: Callable[[str], bool] = _no_category,
) -> KeyParts:
    """Product id and category hint of a decoded key: object metadata first, then the key convention.

    ``prefixes``: where products may live (the upload prefix, the backfill prefix); the longest one
    the key starts with is where the convention starts. ``category``: named by whoever started the
    run (``describer backfill --category``); object metadata still wins over it. ``is_category``:
    the catalogue's category names, which tell the two conventions apart (``product_folder``).
    """
    prefix = _convention_start(key, prefixes)
    # Named with the upload (its metadata, or by whoever started the run) before the key's folder.
    named = metadata.get(CATEGORY_METADATA) or category
    product_dir = product_folder(key, prefixes, is_category)
    if product_dir is not None:
        folder, stem = product_dir[len(prefix) :].split("/")[:2]
    else:
        folders, _, file_name = key[len(prefix) :].rpartition("/")
        stem = file_name.rsplit(".", 1)[0] if "." in file_name[1:] else file_name
        folder = folders.rsplit("/", 1)[-1]
    source = CategorySource.METADATA if named else CategorySource.KEY if folder else None
    product_id = metadata.get(PRODUCT_ID_METADATA) or stem
    return KeyParts(
        product_id=checked_product_id(product_id),
        category_hint=named or folder or None,
        category_source=source,
    )


def checked_product_id(candidate: str) -> str:
    product_id = unicodedata.normalize("NFC", candidate.strip())
    if not product_id:
        raise InvalidInput("no product id: the key names no file", ErrorCode.INVALID_KEY)
    if len(product_id) > MAX_PRODUCT_ID_LENGTH:
        raise InvalidInput(
            f"product id longer than {MAX_PRODUCT_ID_LENGTH} characters", ErrorCode.INVALID_KEY
        )
    if any(unicodedata.category(char).startswith("C") for char in product_id):
        raise InvalidInput("product id contains control characters", ErrorCode.INVALID_KEY)
    return product_id


def execution_name(bucket: str, event_key: str, version_or_sequencer: str, redrive_count: int = 0) -> str:
    """A Step Functions execution name that is the same for every delivery of one upload.

    Readable stem of the file name, then a hash of bucket, key and object version (or the event's
    sequencer on an unversioned bucket), then ``-r<n>`` for the upload's n-th redrive; at most 80
    characters of ``[A-Za-z0-9_-]``.
    """
    digest = hashlib.sha256(f"{bucket}\0{event_key}\0{version_or_sequencer}".encode()).hexdigest()[:40]
    suffix = f"-{digest}" + (f"-r{redrive_count}" if redrive_count else "")
    file_name = event_key.rsplit("/", 1)[-1]
    stem = _NAME_UNSAFE.sub("-", file_name).strip("-")[: EXECUTION_NAME_LIMIT - len(suffix)]
    return f"{stem}{suffix}" if stem else suffix[1:]
