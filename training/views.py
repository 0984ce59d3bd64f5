"""Three photos of one synthetic product, as product teams shoot them: front, back and a detail close-up.

Built on ``training.synth``'s renderer (the garment drawn front-on), each view shows only what that
photo would show, so some attributes can be read from one view alone:

- **front**: the garment folded flat, sleeves tucked behind: colour, fit, neck or collar, stripes
  or checks; no sleeves, no fabric grain at this distance, and a print is on the back;
- **back**: on a hanger: colour, fit, sleeve length, stripes or checks, and the back print
  (``Pattern: Printed``); no grain;
- **detail**: a close-up of the cloth (the lower body, away from print and placket): colour, the
  fabric's grain, a piece of any stripes or checks.

Every view is labelled with all the product's attributes (a photo that cannot show one teaches the
model its prior), so a model trained on these views and then asked on one view alone is as good as
that view allows; ``make multi-photo-bench`` measures what fusing the three gains.
"""

from __future__ import annotations

import random
from dataclasses import replace
from enum import StrEnum

from PIL import Image

from describer_rules.catalogue import Catalogue
from training.synth import IMAGE_SIZE, SyntheticProduct, demo_catalogue, render_product

# The views are drawn for tops: a folded front, a back on a hanger and a cloth close-up tell them apart.
VIEW_CATEGORIES = ("Shirts", "Tshirts")

# What a view cannot show is drawn as this plain value.
PLAIN_FABRIC = "Cotton"  # synth draws cotton without visible grain
NO_SLEEVES = "Sleeveless"
NO_PRINT = {"Printed": "Solid"}
# The detail view: this square of the front rendering (the lower body, right of the placket), enlarged.
DETAIL_BOX = (IMAGE_SIZE // 2 + 4, IMAGE_SIZE - 44, IMAGE_SIZE // 2 + 18, IMAGE_SIZE - 30)


def view_catalogue() -> Catalogue:
    """The demo catalogue's categories that have three views (``VIEW_CATEGORIES``)."""
    demo = demo_catalogue()
    return demo.model_copy(update={"categories": [c for c in demo.categories if c.name in VIEW_CATEGORIES]})


class View(StrEnum):
    FRONT = "front"
    BACK = "back"
    DETAIL = "detail"


def _drawn_as(product: SyntheticProduct, **overrides: str) -> SyntheticProduct:
    return replace(product, attributes={**product.attributes, **overrides})


def render_view(product: SyntheticProduct, view: View, rng: random.Random) -> Image.Image:
    """One photo of ``product`` from ``view`` (``IMAGE_SIZE`` square, RGB)."""
    pattern = product.attributes["Pattern"]
    if view is View.FRONT:
        shown = _drawn_as(
            product,
            Fabric=PLAIN_FABRIC,
            Pattern=NO_PRINT.get(pattern, pattern),
            **{"Sleeve Length": NO_SLEEVES},
        )
        return render_product(shown, rng)
    if view is View.BACK:
        return render_product(_drawn_as(product, Fabric=PLAIN_FABRIC), rng)
    cloth = render_product(_drawn_as(product, Pattern=NO_PRINT.get(pattern, pattern)), rng)
    return cloth.crop(DETAIL_BOX).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.NEAREST)


def render_views(product: SyntheticProduct, rng: random.Random) -> dict[View, Image.Image]:
    return {view: render_view(product, view, rng) for view in View}
