"""A synthetic fashion catalogue in the Kaggle "Fashion Product Images" layout.

Six visibly different categories whose pictures encode every attribute the demo catalogue asks
about (``DRAWN``): T-shirts and shirts (sleeve length, pattern, fit, fabric grain, neck or collar),
jeans (waist rise, leg width for the fit, distress patches), dresses (sleeves, pattern, neckline,
hem length, silhouette), casual shoes (ankle height, fastening) and handbags (bag type, embossed
pattern), each in its colour. The demo catalogue is the packaged catalogue restricted by code to
what is drawn here (``demo_catalogue``): the same questions, values and spellings, so the pipeline
asks the demo model exactly what it may know. Values are drawn with weights the square root of the
packaged catalogue's support (rare values stay rarer, but are seen often enough to be learnt).

Written exactly like the dataset: ``styles.csv`` unquoted (names with commas yield extra fields),
``styles/<id>.json`` with ``data.articleAttributes``, ``data.articleType.typeName`` and
``data.baseColour``, ``images/<id>.jpg``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw
from tqdm import tqdm

from describer_rules.catalogue import (
    ARTICLE_TYPE_ATTRIBUTE,
    COLOUR_ATTRIBUTE,
    GENERIC_CATEGORY,
    AttributeSpec,
    Catalogue,
    CategorySpec,
    load_catalogue,
)

IMAGE_SIZE = 128
BACKGROUND = (250, 250, 250)
OUTLINE = (60, 60, 60)
STYLES_HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
)
# What the renderer draws: category -> attribute -> the values a picture shows (all of them values of
# the packaged catalogue; a unit test keeps it so). Colour is drawn for every category (``PALETTE``).
DRAWN: dict[str, dict[str, tuple[str, ...]]] = {
    "Tshirts": {
        "Sleeve Length": ("Short Sleeves", "Long Sleeves", "Sleeveless"),
        "Pattern": ("Printed", "Solid", "Striped"),
        "Fit": ("Regular Fit", "Slim Fit"),
        "Fabric": ("Cotton", "Synthetic", "Polyester", "Blended"),
        "Neck": ("Round Neck", "Polo Collar", "V-Neck"),
    },
    "Shirts": {
        "Sleeve Length": ("Long Sleeves", "Short Sleeves", "Three-Quarter Sleeves"),
        "Pattern": ("Checked", "Striped", "Solid", "Printed"),
        "Fit": ("Regular Fit", "Slim Fit"),
        "Fabric": ("Cotton", "Polyester"),
        "Collar": ("Spread Collar", "Mandarin Collar"),
    },
    "Jeans": {
        "Fit": ("Slim Fit", "Skinny Fit", "Regular Fit"),
        "Distress": ("Low Distress", "Clean Look", "Mildly Distressed"),
        "Waist Rise": ("Mid-Rise", "Low-Rise", "High-Rise"),
    },
    "Dresses": {
        "Sleeve Length": ("Sleeveless", "Short Sleeves"),
        "Pattern": ("Printed", "Solid"),
        "Neck": ("Round Neck", "V-Neck", "Strapless"),
        "Length": ("Knee Length", "Above Knee", "Mini"),
        "Shape": ("Fit and Flare", "A-Line"),
    },
    "Casual Shoes": {
        "Ankle Height": ("Regular", "Mid-Top", "High-Top"),
        "Fastening": ("Lace-Ups", "Slip-On", "Velcro"),
    },
    "Handbags": {
        "Pattern": ("Self Design", "Solid"),
        "Type": ("Shoulder Bag", "Sling Bag", "Handheld Bag", "Tote Bag"),
    },
}
# Colours the renderer paints; a category gets those its packaged Colour vocabulary holds.
PALETTE: dict[str, tuple[int, int, int]] = {
    "Blue": (40, 90, 205),
    "White": (244, 244, 244),
    "Black": (25, 25, 25),
    "Red": (205, 35, 35),
    "Green": (40, 150, 60),
    "Grey": (128, 128, 128),
}
BRANDS = ("Roadster", "Wrangler", "Puma", "Nike", "Flying Machine", "Peter England", "Locomotive", "Myntra")
NAMES = {
    "Tshirts": "T-shirt",
    "Shirts": "Shirt",
    "Jeans": "Jeans",
    "Dresses": "Dress",
    "Casual Shoes": "Casual Shoes",
    "Handbags": "Handbag",
}
# Real product names with commas, which the unquoted styles.csv splits into extra fields.
COMMA_PHRASES = (
    "Yes, its all about me",
    "Take my advice, I don't use it anyway",
    "Be Reasonable,Do It My Way",
)


def _restricted(spec: AttributeSpec, keep: Sequence[str]) -> AttributeSpec:
    missing = [value for value in keep if value not in spec.values]
    if missing:
        raise ValueError(f"{spec.name}: drawn values {missing} are not in the packaged catalogue")
    values = {value: count for value, count in spec.values.items() if value in keep}
    aliases = {alias: value for alias, value in spec.aliases.items() if value in values}
    return spec.model_copy(update={"values": values, "aliases": aliases})


def demo_catalogue(packaged: Catalogue | None = None) -> Catalogue:
    """The packaged catalogue restricted to what ``DRAWN`` and ``PALETTE`` draw (order and support kept)."""
    packaged = packaged or load_catalogue()
    categories: list[CategorySpec] = []
    for spec in packaged.categories:
        drawn = DRAWN.get(spec.name)
        if drawn is None:
            continue
        attributes = []
        for attribute in spec.attributes:
            if attribute.name == COLOUR_ATTRIBUTE:
                attributes.append(_restricted(attribute, [c for c in PALETTE if c in attribute.values]))
            elif attribute.name in drawn:
                attributes.append(_restricted(attribute, drawn[attribute.name]))
        categories.append(spec.model_copy(update={"attributes": attributes}))
    generic = packaged.category(GENERIC_CATEGORY)
    names = [category.name for category in categories]
    colours = sorted({c for category in categories for c in category.attribute(COLOUR_ATTRIBUTE).values})
    generic_attributes = [
        _restricted(attribute, names if attribute.name == ARTICLE_TYPE_ATTRIBUTE else colours)
        for attribute in generic.attributes
        if attribute.name in (ARTICLE_TYPE_ATTRIBUTE, COLOUR_ATTRIBUTE)
    ]
    categories.append(generic.model_copy(update={"attributes": generic_attributes}))
    return Catalogue(
        source=f"the demo subset (training/synth.py draws it) of: {packaged.source}",
        min_support=packaged.min_support,
        categories=categories,
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

    @property
    def truth(self) -> dict[str, str]:
        """Every attribute the product was drawn with, its colour included: what a right answer says."""
        return {**self.attributes, COLOUR_ATTRIBUTE: self.colour}


def _draw(choices: dict[str, int], rng: random.Random) -> str:
    return rng.choices(list(choices), weights=[math.sqrt(n) for n in choices.values()])[0]


def sample_product(
    product_id: int, rng: random.Random, catalogue: Catalogue, comma_name_rate: float = 0.01
) -> SyntheticProduct:
    """One product of ``catalogue`` (a demo catalogue): a category at random, its values by support."""
    categories = [c for c in catalogue.categories if c.name != GENERIC_CATEGORY]
    category = categories[rng.randrange(len(categories))]
    attributes = {spec.name: _draw(spec.values, rng) for spec in category.attributes}
    colour = attributes.pop(COLOUR_ATTRIBUTE)
    if attributes.get("Neck") == "Strapless":
        attributes["Sleeve Length"] = "Sleeveless"  # a strapless dress has no sleeves
    noun = NAMES.get(category.name, category.name)
    brand = rng.choice(BRANDS)
    gender = "Women" if category.name in ("Dresses", "Handbags") else "Men"
    if rng.random() < comma_name_rate:
        name = f"{brand} {gender}'s {rng.choice(COMMA_PHRASES)} {colour} {noun}"
    else:
        name = f"{brand} {gender} {colour} {noun}"
    # As in the real JSON: placeholders the preparation must ignore.
    extra = {"Body or Garment Size": "Garment Measurements in", "Fabric 2": "NA"}
    return SyntheticProduct(product_id, category.name, colour, attributes, name, gender, extra)


def _shade(rgb: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    return tuple(max(0, min(255, channel + amount)) for channel in rgb)  # type: ignore[return-value]


def _contrast(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """A pattern colour that stands out from the garment without looking like another base colour."""
    return _shade(rgb, -70) if sum(rgb) > 330 else _shade(rgb, 80)


def render_product(product: SyntheticProduct, rng: random.Random) -> Image.Image:
    """Draw the product front-on (shoes from the side); every attribute is visible, with jitter."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    base = _shade(PALETTE[product.colour], rng.randint(-12, 12))
    painter = _PAINTERS[product.article_type]
    painter(image, product, base, _contrast(base), rng)
    return image


def _textured(
    image: Image.Image, outline: list[tuple[int, int]], base: tuple[int, int, int], paint: object
) -> None:
    """Fill ``outline`` with ``base`` and whatever ``paint(draw)`` adds, clipped to the outline."""
    size = image.size[0]
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    texture = Image.new("RGB", image.size, base)
    if callable(paint):
        paint(ImageDraw.Draw(texture), size)
    image.paste(texture, (0, 0), mask)
    ImageDraw.Draw(image).polygon(outline, outline=OUTLINE)


def _top(
    image: Image.Image,
    product: SyntheticProduct,
    base: tuple[int, int, int],
    accent: tuple[int, int, int],
    rng: random.Random,
) -> None:
    """T-shirts and shirts: body, sleeves, neck or collar, pattern, fabric grain, shirts' placket."""
    size = IMAGE_SIZE
    draw = ImageDraw.Draw(image)
    attributes = product.attributes
    centre = size // 2 + rng.randint(-2, 2)
    top = 22 + rng.randint(-2, 2)
    bottom = size - 10 + rng.randint(-2, 2)
    half = (30 if attributes["Fit"] == "Regular Fit" else 20) + rng.randint(-1, 1)
    shoulder = half + 4
    left, right = centre - half, centre + half
    _sleeves(draw, attributes["Sleeve Length"], centre, shoulder, top, base)
    body = [
        (centre - shoulder, top),
        (centre + shoulder, top),
        (right, top + 20),
        (right, bottom),
        (left, bottom),
        (left, top + 20),
    ]

    def paint(texture: ImageDraw.ImageDraw, size: int) -> None:
        _draw_fabric(texture, attributes.get("Fabric", "Cotton"), base, size)
        _draw_pattern(texture, attributes["Pattern"], accent, centre, top, size, rng)

    _textured(image, body, base, paint)
    _draw_neck(draw, attributes.get("Neck") or attributes.get("Collar"), centre, top, base, accent)
    if product.article_type == "Shirts":
        for y in range(top + 14, bottom - 4, 12):
            draw.ellipse((centre - 2, y - 2, centre + 2, y + 2), fill=accent)
        draw.line((centre, top + 8, centre, bottom), fill=OUTLINE)


def _sleeves(
    draw: ImageDraw.ImageDraw, length: str, centre: int, shoulder: int, top: int, base: tuple[int, int, int]
) -> None:
    # Drawn first, so the body covers their roots.
    drop = {"Sleeveless": 0, "Short Sleeves": 24, "Three-Quarter Sleeves": 50, "Long Sleeves": 80}[length]
    if not drop:
        return
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


def _draw_fabric(draw: ImageDraw.ImageDraw, fabric: str, base: tuple[int, int, int], size: int) -> None:
    # Bold grains (a 12 px period, 5 px marks): still 6 px / 2-3 px at the tiny model's 64 px input.
    grain = _shade(base, 75 if sum(base) < 330 else -75)
    if fabric == "Polyester":  # a vertical rib
        for x in range(0, size, 12):
            draw.rectangle((x, 0, x + 4, size), fill=grain)
    elif fabric == "Synthetic":  # a mesh of dots
        for y in range(0, size, 12):
            for x in range(0, size, 12):
                draw.rectangle((x, y, x + 5, y + 5), fill=grain)
    elif fabric == "Blended":  # a diagonal twill
        for offset in range(-size, size, 12):
            draw.line((offset, 0, offset + size, size), fill=grain, width=5)
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
    elif pattern == "Checked":  # a bold grid: as many vertical bars as horizontal ones
        for position in range(0, size, 16):
            draw.rectangle((position, 0, position + 6, size), fill=accent)
            draw.rectangle((0, position, size, position + 6), fill=accent)
    elif pattern == "Printed":  # a large chest print: a disc with a square inside
        y = top + 38 + rng.randint(-2, 2)
        radius = 22 + rng.randint(-2, 2)
        draw.ellipse((centre - radius, y - radius, centre + radius, y + radius), fill=accent)
        draw.rectangle((centre - 8, y - 8, centre + 8, y + 8), fill=_contrast(accent))


def _draw_neck(
    draw: ImageDraw.ImageDraw,
    style: str | None,
    centre: int,
    top: int,
    base: tuple[int, int, int],
    accent: tuple[int, int, int],
) -> None:
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


def _jeans(
    image: Image.Image,
    product: SyntheticProduct,
    base: tuple[int, int, int],
    accent: tuple[int, int, int],
    rng: random.Random,
) -> None:
    """Two legs below a waistband: its height is the rise, the legs' width the fit, patches the distress."""
    attributes = product.attributes
    draw = ImageDraw.Draw(image)
    centre = IMAGE_SIZE // 2 + rng.randint(-2, 2)
    waist = {"High-Rise": 12, "Mid-Rise": 28, "Low-Rise": 44}[attributes["Waist Rise"]] + rng.randint(-2, 2)
    hip = 30
    leg = {"Regular Fit": 17, "Slim Fit": 12, "Skinny Fit": 7}[attributes["Fit"]] + rng.randint(-1, 1)
    crotch, hem = 66, IMAGE_SIZE - 6
    outline = [
        (centre - hip, waist),
        (centre + hip, waist),
        (centre + hip, crotch),
        (centre + 2 + 2 * leg, hem),
        (centre + 2, hem),
        (centre, crotch + 4),
        (centre - 2, hem),
        (centre - 2 - 2 * leg, hem),
        (centre - hip, crotch),
    ]
    _textured(image, outline, base, None)
    draw.rectangle((centre - hip, waist, centre + hip, waist + 7), fill=accent, outline=OUTLINE)
    for x in (centre - hip + 8, centre, centre + hip - 8):
        draw.rectangle((x - 1, waist, x + 1, waist + 10), fill=OUTLINE)
    light = _shade(base, 90)
    patches = {"Clean Look": 0, "Low Distress": 2, "Mildly Distressed": 5}[attributes["Distress"]]
    for number in range(patches):
        side = -1 if number % 2 == 0 else 1
        x = centre + side * (10 + rng.randint(0, 6))
        y = crotch - 6 + 12 * (number // 2) + rng.randint(-2, 2)
        draw.rectangle((x - 7, y - 4, x + 7, y + 4), fill=light)
        draw.line((x - 6, y, x + 6, y), fill=BACKGROUND, width=2)


def _dress(
    image: Image.Image,
    product: SyntheticProduct,
    base: tuple[int, int, int],
    accent: tuple[int, int, int],
    rng: random.Random,
) -> None:
    """Bodice and skirt: the hem's height is the length, the skirt's flare the shape."""
    attributes = product.attributes
    draw = ImageDraw.Draw(image)
    centre = IMAGE_SIZE // 2 + rng.randint(-2, 2)
    strapless = attributes["Neck"] == "Strapless"
    top = (34 if strapless else 16) + rng.randint(-2, 2)
    shoulder, waist_half, waist = 20, 13, 52
    hem = {"Mini": 78, "Above Knee": 98, "Knee Length": 120}[attributes["Length"]] + rng.randint(-2, 2)
    if attributes["Shape"] == "Fit and Flare":
        flare = 46  # a narrow waist, then a wide skirt
        outline = [
            (centre - shoulder, top),
            (centre + shoulder, top),
            (centre + waist_half, waist),
            (centre + flare, hem),
            (centre - flare, hem),
            (centre - waist_half, waist),
        ]
    else:  # A-Line: straight sides widening evenly from the shoulders
        flare = 34
        outline = [
            (centre - shoulder, top),
            (centre + shoulder, top),
            (centre + flare, hem),
            (centre - flare, hem),
        ]
    if not strapless and attributes["Sleeve Length"] == "Short Sleeves":
        for side in (-1, 1):
            root = centre + side * shoulder
            draw.polygon(
                [(root, top), (root + side * 14, top + 16), (root + side * 4, top + 22), (root, top + 14)],
                fill=base,
                outline=OUTLINE,
            )

    def paint(texture: ImageDraw.ImageDraw, size: int) -> None:
        if attributes["Pattern"] == "Printed":  # large polka dots all over
            for y in range(6, size, 18):
                for x in range(6 + (y // 18 % 2) * 9, size, 18):
                    texture.ellipse((x - 5, y - 5, x + 5, y + 5), fill=accent)

    _textured(image, outline, base, paint)
    draw.line((centre - waist_half, waist, centre + waist_half, waist), fill=OUTLINE, width=2)
    if not strapless:
        _draw_neck(draw, attributes["Neck"], centre, top, base, accent)
    else:
        draw.rectangle((centre - shoulder, top, centre + shoulder, top + 3), fill=accent)


def _shoe(
    image: Image.Image,
    product: SyntheticProduct,
    base: tuple[int, int, int],
    accent: tuple[int, int, int],
    rng: random.Random,
) -> None:
    """A shoe from the side: the collar's height is the ankle height; laces, a gusset or straps."""
    attributes = product.attributes
    draw = ImageDraw.Draw(image)
    left, right = 14 + rng.randint(-2, 2), 114 + rng.randint(-2, 2)
    sole_top = 92 + rng.randint(-2, 2)
    collar = {"Regular": 64, "Mid-Top": 44, "High-Top": 22}[attributes["Ankle Height"]]
    back = left + 6
    upper = [
        (back, collar),
        (back + 34, collar),
        (back + 46, sole_top - 26),
        (right - 6, sole_top - 16),
        (right, sole_top),
        (left, sole_top),
    ]
    _textured(image, upper, base, None)
    sole = BACKGROUND if sum(base) < 600 else (90, 90, 90)
    draw.rectangle((left - 2, sole_top, right + 2, sole_top + 10), fill=sole, outline=OUTLINE)
    fastening = attributes["Fastening"]
    if fastening == "Lace-Ups":  # a row of bold crossed laces down the instep
        lace = BACKGROUND if sum(base) < 450 else OUTLINE
        for step in range(4):
            x = back + 38 + step * 9
            y = collar + 8 + step * 8
            draw.line((x - 8, y - 5, x + 8, y + 5), fill=lace, width=3)
            draw.line((x - 8, y + 5, x + 8, y - 5), fill=lace, width=3)
    elif fastening == "Velcro":  # two wide straps across
        for step in range(2):
            y = sole_top - 32 + step * 15
            draw.rectangle((back + 20, y, back + 72, y + 10), fill=accent, outline=OUTLINE)
    else:  # Slip-On: a wide dark elastic gusset at the instep
        draw.polygon(
            [(back + 26, collar), (back + 50, collar), (back + 38, collar + 26)],
            fill=OUTLINE,
            outline=OUTLINE,
        )


def _handbag(
    image: Image.Image,
    product: SyntheticProduct,
    base: tuple[int, int, int],
    accent: tuple[int, int, int],
    rng: random.Random,
) -> None:
    """A bag: body size and strap or handles name the type; an embossed lattice is a self design."""
    attributes = product.attributes
    draw = ImageDraw.Draw(image)
    centre = IMAGE_SIZE // 2 + rng.randint(-2, 2)
    kind = attributes["Type"]
    if kind == "Tote Bag":
        body = [(centre - 40, 50), (centre + 40, 50), (centre + 44, 118), (centre - 44, 118)]
        for side in (-1, 1):
            draw.arc(
                (centre + side * 20 - 12, 22, centre + side * 20 + 12, 70), 180, 360, fill=OUTLINE, width=4
            )
    elif kind == "Shoulder Bag":
        body = [(centre - 30, 62), (centre + 30, 62), (centre + 38, 112), (centre - 38, 112)]
        draw.arc((centre - 28, 8, centre + 28, 100), 180, 360, fill=OUTLINE, width=4)
    elif kind == "Sling Bag":
        body = [(centre - 16, 84), (centre + 22, 84), (centre + 22, 114), (centre - 16, 114)]
        draw.line((centre - 10, 84, centre - 50, 6), fill=OUTLINE, width=3)
        draw.line((centre + 16, 84, centre + 50, 6), fill=OUTLINE, width=3)
    else:  # Handheld Bag: a small body with one short handle
        body = [(centre - 26, 70), (centre + 26, 70), (centre + 26, 108), (centre - 26, 108)]
        draw.arc((centre - 12, 52, centre + 12, 88), 180, 360, fill=OUTLINE, width=5)

    def paint(texture: ImageDraw.ImageDraw, size: int) -> None:
        if attributes["Pattern"] == "Self Design":  # an embossed diamond lattice
            shade = _shade(base, -70 if sum(base) > 200 else 75)
            for offset in range(-size, size, 14):
                texture.line((offset, 0, offset + size, size), fill=shade, width=3)
                texture.line((offset + size, 0, offset, size), fill=shade, width=3)

    _textured(image, body, base, paint)
    top_y = min(y for _, y in body)
    draw.line((body[0][0] + 4, top_y + 8, body[1][0] - 4, top_y + 8), fill=accent, width=2)


_PAINTERS = {
    "Tshirts": _top,
    "Shirts": _top,
    "Jeans": _jeans,
    "Dresses": _dress,
    "Casual Shoes": _shoe,
    "Handbags": _handbag,
}


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
                "id": 90 + list(DRAWN).index(product.article_type),
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
    catalogue: Catalogue | None = None,
) -> list[SyntheticProduct]:
    """Write ``products`` synthetic products of ``catalogue`` (the demo catalogue by default) in the
    Kaggle layout under ``out_dir``."""
    rng = random.Random(seed)
    vocabulary = catalogue or demo_catalogue()
    out_dir = Path(out_dir)
    (out_dir / "styles").mkdir(parents=True, exist_ok=True)
    if images:
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
    written: list[SyntheticProduct] = []
    rows = [STYLES_HEADER]
    for index in tqdm(range(products), desc="synthesising products", unit="product", disable=not progress):
        product = sample_product(first_id + index, rng, vocabulary)
        written.append(product)
        rows.append(styles_csv_row(product, year=2011 + index % 6))
        (out_dir / "styles" / f"{product.product_id}.json").write_text(json.dumps(style_json(product)))
        if images:
            render_product(product, rng).save(out_dir / "images" / f"{product.product_id}.jpg", quality=92)
    (out_dir / "styles.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return written


def value_counts(products: Sequence[SyntheticProduct]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for product in products:
        for name, value in product.truth.items():
            counts.setdefault(name, {}).setdefault(value, 0)
            counts[name][value] += 1
    return counts
