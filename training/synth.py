"""A synthetic fashion catalogue in the Kaggle "Fashion Product Images" layout.

Shirts and T-shirts whose pictures visibly encode every attribute the real catalogue asks about:
colour (the garment's colour), pattern (solid / stripes / checks / a print on the chest), sleeve
length (sleeve polygons), neck or collar (the cut-out or the flaps at the top), fit (silhouette
width) and fabric (the grain of the cloth). Value frequencies follow the real counts over the
10,284 Shirts and Tshirts of the dataset, so rare values stay rare.

Written exactly like the dataset: ``styles.csv`` unquoted (names with commas yield extra fields),
``styles/<id>.json`` with ``data.articleAttributes``, ``data.articleType.typeName`` and
``data.baseColour``, ``images/<id>.jpg``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw
from tqdm import tqdm

IMAGE_SIZE = 128
BACKGROUND = (250, 250, 250)
OUTLINE = (60, 60, 60)
STYLES_HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
)

# Real value counts of the dataset; the rare tail ("+3 rare" etc.) is left out.
ARTICLE_TYPES = {"Tshirts": 7067, "Shirts": 3217}
SHARED_ATTRIBUTES: dict[str, dict[str, int]] = {
    "Sleeve Length": {
        "Short Sleeves": 6570,
        "Long Sleeves": 2439,
        "Sleeveless": 153,
        "Three-Quarter Sleeves": 62,
    },
    "Pattern": {"Printed": 3980, "Solid": 2050, "Striped": 1563, "Checked": 1404},
    "Fit": {"Regular Fit": 7796, "Slim Fit": 1281},
    "Fabric": {"Cotton": 7455, "Polyester": 477, "Synthetic": 470, "Blended": 177},
}
NECK_OR_COLLAR: dict[str, tuple[str, dict[str, int]]] = {
    "Tshirts": ("Neck", {"Round Neck": 4415, "Polo Collar": 1377, "V-Neck": 235}),
    "Shirts": ("Collar", {"Spread Collar": 2822, "Mandarin Collar": 42}),
}
# The six most frequent of the 36 base colours, with their real counts.
COLOURS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "Blue": (1831, (40, 90, 205)),
    "White": (1645, (244, 244, 244)),
    "Black": (1352, (25, 25, 25)),
    "Red": (871, (205, 35, 35)),
    "Green": (838, (40, 150, 60)),
    "Grey": (813, (128, 128, 128)),
}
BRANDS = ("Roadster", "Wrangler", "Puma", "Nike", "Flying Machine", "Peter England", "Locomotive", "Myntra")
# Real product names with commas, which the unquoted styles.csv splits into extra fields.
COMMA_PHRASES = (
    "Yes, its all about me",
    "Take my advice, I don't use it anyway",
    "Be Reasonable,Do It My Way",
)


@dataclass(frozen=True)
class SyntheticProduct:
    product_id: int
    article_type: str
    colour: str
    attributes: dict[str, str]
    name: str
    gender: str = "Men"
    extra_attributes: dict[str, str] = field(default_factory=dict)


def _draw(choices: dict[str, int], rng: random.Random) -> str:
    return rng.choices(list(choices), weights=list(choices.values()))[0]


def sample_product(product_id: int, rng: random.Random, comma_name_rate: float = 0.01) -> SyntheticProduct:
    article_type = _draw(ARTICLE_TYPES, rng)
    attributes = {name: _draw(values, rng) for name, values in SHARED_ATTRIBUTES.items()}
    neck_name, neck_values = NECK_OR_COLLAR[article_type]
    attributes[neck_name] = _draw(neck_values, rng)
    colour = _draw({name: count for name, (count, _) in COLOURS.items()}, rng)
    noun = "T-shirt" if article_type == "Tshirts" else "Shirt"
    brand = rng.choice(BRANDS)
    pattern = attributes["Pattern"]
    if rng.random() < comma_name_rate:
        name = f"{brand} Men's {rng.choice(COMMA_PHRASES)} {colour} {noun}"
    else:
        name = f"{brand} Men {colour} {pattern} {noun}"
    # As in the real JSON: placeholders the preparation must ignore.
    extra = {"Body or Garment Size": "Garment Measurements in", "Fabric 2": "NA"}
    return SyntheticProduct(product_id, article_type, colour, attributes, name, extra_attributes=extra)


def _shade(rgb: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    return tuple(max(0, min(255, channel + amount)) for channel in rgb)  # type: ignore[return-value]


def _contrast(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """A pattern colour that stands out from the garment without looking like another base colour."""
    return _shade(rgb, -70) if sum(rgb) > 330 else _shade(rgb, 80)


def render_product(product: SyntheticProduct, rng: random.Random) -> Image.Image:
    """Draw the garment front-on; every attribute is visible, with jitter in placement and shade."""
    size = IMAGE_SIZE
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    base = _shade(COLOURS[product.colour][1], rng.randint(-12, 12))
    accent = _contrast(base)
    attributes = product.attributes
    centre = size // 2 + rng.randint(-2, 2)
    top = 22 + rng.randint(-2, 2)
    bottom = size - 10 + rng.randint(-2, 2)
    half = (30 if attributes["Fit"] == "Regular Fit" else 20) + rng.randint(-1, 1)
    shoulder = half + 4
    left, right = centre - half, centre + half

    # Sleeves first, so the body covers their roots.
    sleeve_drop = {"Sleeveless": 0, "Short Sleeves": 24, "Three-Quarter Sleeves": 50, "Long Sleeves": 80}
    drop = sleeve_drop[attributes["Sleeve Length"]]
    if drop:
        for side in (-1, 1):
            root = centre + side * shoulder
            tip_out = root + side * (10 + drop // 5)
            polygon = [
                (root, top),
                (tip_out, top + drop),
                (tip_out - side * 12, top + drop + 4),
                (root, top + 22),
            ]
            draw.polygon(polygon, fill=base, outline=OUTLINE)
    body = [
        (centre - shoulder, top),
        (centre + shoulder, top),
        (right, top + 20),
        (right, bottom),
        (left, bottom),
        (left, top + 20),
    ]
    draw.polygon(body, fill=base, outline=OUTLINE)

    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon(body, fill=255)
    texture = Image.new("RGB", (size, size), base)
    texture_draw = ImageDraw.Draw(texture)
    _draw_fabric(texture_draw, attributes["Fabric"], base, size)
    _draw_pattern(texture_draw, attributes["Pattern"], accent, centre, top, size, rng)
    image.paste(texture, (0, 0), mask)
    draw.polygon(body, outline=OUTLINE)
    _draw_neck(draw, product, centre, top, base, accent)
    if product.article_type == "Shirts":
        for y in range(top + 14, bottom - 4, 12):
            draw.ellipse((centre - 2, y - 2, centre + 2, y + 2), fill=accent)
        draw.line((centre, top + 8, centre, bottom), fill=OUTLINE)
    return image


def _draw_fabric(draw: ImageDraw.ImageDraw, fabric: str, base: tuple[int, int, int], size: int) -> None:
    grain = _shade(base, 38 if sum(base) < 330 else -38)
    if fabric == "Polyester":  # a fine horizontal rib
        for y in range(0, size, 4):
            draw.line((0, y, size, y), fill=grain)
    elif fabric == "Synthetic":  # a mesh of dots
        for y in range(0, size, 5):
            for x in range(0, size, 5):
                draw.rectangle((x, y, x + 1, y + 1), fill=grain)
    elif fabric == "Blended":  # a diagonal twill
        for offset in range(-size, size, 5):
            draw.line((offset, 0, offset + size, size), fill=grain)
    # Cotton: a plain weave, no visible grain.


def _draw_pattern(
    draw: ImageDraw.ImageDraw,
    pattern: str,
    accent: tuple[int, int, int],
    centre: int,
    top: int,
    size: int,
    rng: random.Random,
) -> None:
    # Bold, regular repeats (a 16 px period on the 128 px picture): a small vision encoder trained
    # from scratch in minutes picks them up; finer or irregular ones would need far more steps.
    if pattern == "Striped":
        for y in range(0, size, 16):
            draw.rectangle((0, y, size, y + 7), fill=accent)
    elif pattern == "Checked":
        for position in range(0, size, 16):
            draw.rectangle((position, 0, position + 4, size), fill=accent)
            draw.rectangle((0, position, size, position + 4), fill=accent)
    elif pattern == "Printed":
        y = top + 36 + rng.randint(-2, 2)
        radius = 18 + rng.randint(-2, 2)
        draw.ellipse((centre - radius, y - radius, centre + radius, y + radius), fill=accent)
        draw.rectangle((centre - 5, y - 5, centre + 5, y + 5), fill=_contrast(accent))


def _draw_neck(
    draw: ImageDraw.ImageDraw,
    product: SyntheticProduct,
    centre: int,
    top: int,
    base: tuple[int, int, int],
    accent: tuple[int, int, int],
) -> None:
    style = product.attributes.get("Neck") or product.attributes.get("Collar")
    flap = _shade(base, -45 if sum(base) > 200 else 60)
    if style == "Round Neck":
        draw.chord((centre - 14, top - 14, centre + 14, top + 14), 0, 180, fill=BACKGROUND, outline=OUTLINE)
    elif style == "V-Neck":
        draw.polygon(
            [(centre - 14, top), (centre + 14, top), (centre, top + 30)], fill=BACKGROUND, outline=OUTLINE
        )
    elif style == "Polo Collar":
        draw.polygon(
            [(centre - 16, top), (centre, top + 10), (centre - 10, top + 18)], fill=flap, outline=OUTLINE
        )
        draw.polygon(
            [(centre + 16, top), (centre, top + 10), (centre + 10, top + 18)], fill=flap, outline=OUTLINE
        )
        draw.rectangle((centre - 3, top + 10, centre + 3, top + 30), fill=accent, outline=OUTLINE)
    elif style == "Spread Collar":
        draw.polygon(
            [(centre - 16, top - 2), (centre, top + 6), (centre - 18, top + 12)], fill=flap, outline=OUTLINE
        )
        draw.polygon(
            [(centre + 16, top - 2), (centre, top + 6), (centre + 18, top + 12)], fill=flap, outline=OUTLINE
        )
    elif style == "Mandarin Collar":
        draw.rectangle((centre - 12, top - 5, centre + 12, top + 2), fill=flap, outline=OUTLINE)


def styles_csv_row(product: SyntheticProduct, year: int) -> str:
    """One unquoted row, exactly as the dataset writes it (a comma in the name is not escaped)."""
    fields = [
        str(product.product_id),
        product.gender,
        "Apparel",
        "Topwear",
        product.article_type,
        product.colour,
        "Summer",
        str(year),
        "Casual",
        product.name,
    ]
    return ",".join(fields)


def style_json(product: SyntheticProduct) -> dict[str, object]:
    attributes = {**product.attributes, **product.extra_attributes}
    return {
        "meta": {"code": 200, "requestId": "", "errorDetail": None},
        "data": {
            "id": product.product_id,
            "productDisplayName": product.name,
            "baseColour": product.colour,
            "gender": product.gender,
            "articleType": {
                "id": 90 if product.article_type == "Tshirts" else 91,
                "typeName": product.article_type,
            },
            "articleAttributes": attributes,
        },
        "notification": {},
    }


def write_synthetic_catalogue(
    out_dir: Path,
    products: int,
    seed: int = 0,
    *,
    images: bool = True,
    first_id: int = 10000,
    progress: bool = True,
) -> list[SyntheticProduct]:
    """Write ``products`` synthetic products in the Kaggle layout under ``out_dir``."""
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    (out_dir / "styles").mkdir(parents=True, exist_ok=True)
    if images:
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
    catalogue: list[SyntheticProduct] = []
    rows = [STYLES_HEADER]
    for index in tqdm(range(products), desc="synthesising products", unit="product", disable=not progress):
        product = sample_product(first_id + index, rng)
        catalogue.append(product)
        rows.append(styles_csv_row(product, year=2011 + index % 6))
        (out_dir / "styles" / f"{product.product_id}.json").write_text(json.dumps(style_json(product)))
        if images:
            render_product(product, rng).save(out_dir / "images" / f"{product.product_id}.jpg", quality=92)
    (out_dir / "styles.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return catalogue


def value_counts(products: Sequence[SyntheticProduct]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for product in products:
        for name, value in [*product.attributes.items(), ("Colour", product.colour)]:
            counts.setdefault(name, {}).setdefault(value, 0)
            counts[name][value] += 1
    return counts
