"""The three synthetic views show what each photo would show, and only that."""

from __future__ import annotations

import random
from dataclasses import replace

from PIL import Image, ImageChops

from training.synth import IMAGE_SIZE, SyntheticProduct, sample_product
from training.views import View, render_view, render_views, view_catalogue


def _product(**attributes: str) -> SyntheticProduct:
    rng = random.Random(5)
    product = sample_product(1, rng, view_catalogue())
    return replace(product, attributes={**product.attributes, **attributes})


def _same(first: Image.Image, second: Image.Image) -> bool:
    return ImageChops.difference(first.convert("RGB"), second.convert("RGB")).getbbox() is None


def _view(view: View, **attributes: str) -> Image.Image:
    return render_view(_product(**attributes), view, random.Random(9))


def test_every_view_is_a_square_photo() -> None:
    views = render_views(_product(), random.Random(1))
    assert list(views) == [View.FRONT, View.BACK, View.DETAIL]
    assert all(image.size == (IMAGE_SIZE, IMAGE_SIZE) for image in views.values())


def test_sleeves_show_on_the_back_only() -> None:
    assert _same(
        _view(View.FRONT, **{"Sleeve Length": "Long Sleeves"}),
        _view(View.FRONT, **{"Sleeve Length": "Short Sleeves"}),
    )
    assert not _same(
        _view(View.BACK, **{"Sleeve Length": "Long Sleeves"}),
        _view(View.BACK, **{"Sleeve Length": "Short Sleeves"}),
    )


def test_a_print_shows_on_the_back_only() -> None:
    assert _same(_view(View.FRONT, Pattern="Printed"), _view(View.FRONT, Pattern="Solid"))
    assert _same(_view(View.DETAIL, Pattern="Printed"), _view(View.DETAIL, Pattern="Solid"))
    assert not _same(_view(View.BACK, Pattern="Printed"), _view(View.BACK, Pattern="Solid"))


def test_the_fabric_grain_shows_in_the_detail_only() -> None:
    assert _same(_view(View.FRONT, Fabric="Polyester"), _view(View.FRONT, Fabric="Cotton"))
    assert _same(_view(View.BACK, Fabric="Polyester"), _view(View.BACK, Fabric="Cotton"))
    assert not _same(_view(View.DETAIL, Fabric="Polyester"), _view(View.DETAIL, Fabric="Cotton"))
