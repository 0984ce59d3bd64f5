"""The efficientnet-lite0 preset: what its frozen encoder sees, and real-model -> real-eval end to end
on a small folder of generated photos (the real photos never reach the tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from endpoint.vision_encoders import (
    COLOUR_DIM,
    FIRST_TUNED_BLOCK,
    FROZEN_GRID_DIM,
    GRID,
    HISTOGRAM_BINS,
    TUNED_INPUT_CHANNELS,
    EfficientNetVision,
    build_encoder,
    load_blip2,
)
from training.real_eval import (
    auroc,
    evaluate_real,
    print_evaluation,
    review_curve,
    review_target,
    wilson_interval,
)
from training.real_model import train_real_model

RED, BLUE, WHITE = (220, 20, 20), (20, 40, 200), (255, 255, 255)


def _photo(colour: tuple[int, int, int], box: tuple[int, int, int, int] = (56, 56, 168, 168)) -> Image.Image:
    image = Image.new("RGB", (224, 224), WHITE)
    image.paste(colour, box)
    return image


def _pixels(image: Image.Image) -> torch.Tensor:
    array = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).float().view(224, 224, 3)
    array = array.permute(2, 0, 1)
    return (array / 127.5 - 1).unsqueeze(0)


def test_the_frozen_features_keep_where_each_colour_is() -> None:
    vision = EfficientNetVision(
        hidden_size=32
    ).eval()  # random weights: the pixel statistics do not depend on them
    features = vision.frozen_features(_pixels(_photo(RED, (0, 0, 96, 96))))[0]
    grid = features[: GRID * GRID * FROZEN_GRID_DIM].view(GRID, GRID, FROZEN_GRID_DIM)
    top_left, bottom_right = grid[0, 0, -6:-3], grid[GRID - 1, GRID - 1, -6:-3]  # cells' mean RGB
    assert torch.allclose(top_left, torch.tensor(RED) / 255, atol=0.02)
    assert torch.allclose(bottom_right, torch.ones(3), atol=0.02)
    assert grid[0, GRID - 1, -6] > 0.95 and grid[GRID - 1, 0, -6] > 0.95  # not transposed: both white
    histogram = features[-COLOUR_DIM:]
    red_bin = (
        RED[0] * HISTOGRAM_BINS // 256 * HISTOGRAM_BINS + RED[1] * HISTOGRAM_BINS // 256
    ) * HISTOGRAM_BINS
    red_bin += RED[2] * HISTOGRAM_BINS // 256
    assert histogram[:-1].argmax() == red_bin  # the product, not the white backdrop
    assert histogram[-1] == pytest.approx(1 - (96 * 96) / (224 * 224), abs=0.01)  # background share


def test_the_frozen_part_and_the_tuned_blocks_make_the_whole_encoder() -> None:
    vision = EfficientNetVision(hidden_size=32, pretrained=True).eval()
    encoder: Any = vision.encoder
    pixels = _pixels(_photo(RED)) + 0.1 * torch.randn(1, 3, 224, 224)
    cells = vision.frozen_features(pixels)[0, : GRID * GRID * FROZEN_GRID_DIM].view(GRID * GRID, -1)
    tuned_input = cells[:, :TUNED_INPUT_CHANNELS].T.reshape(1, TUNED_INPUT_CHANNELS, GRID, GRID)
    with torch.no_grad():
        split = vision.final_map(tuned_input)
        whole = encoder.extract_features(pixels)  # the package's own forward pass
    assert torch.allclose(split, whole, atol=1e-4)

    vision.freeze_encoder(tune_last_blocks=True)
    trainable = {
        ".".join(name.split(".")[:2]) if name.startswith("_blocks.") else name.split(".")[0]
        for name, parameter in vision.encoder.named_parameters()
        if parameter.requires_grad
    }
    assert trainable == {f"_blocks.{FIRST_TUNED_BLOCK}", "_conv_head", "_bn1"}
    assert not any(p.requires_grad for p in encoder._blocks[FIRST_TUNED_BLOCK - 1].parameters())


def test_the_wheel_weights_are_imagenet_weights() -> None:
    random_encoder, pretrained = build_encoder(pretrained=False), build_encoder(pretrained=True)
    # Batch norm's running statistics are ImageNet's after conversion, the defaults without it.
    assert not torch.allclose(pretrained.state_dict()["_bn0.running_var"], torch.ones(32))
    assert torch.allclose(random_encoder.state_dict()["_bn0.running_var"], torch.ones(32))


def _kaggle(root: Path, products: int) -> Path:
    """Tshirts (red or blue) and Watches (blue), ids in runs: styles/ only, as the real folder."""
    (root / "images").mkdir(parents=True)
    (root / "styles").mkdir()
    for number in range(products):
        product_id = 100 + number
        watch = number % 3 == 2
        colour = "Blue" if watch or number % 2 else "Red"
        data = {
            "id": product_id,
            "articleType": {"typeName": "Watches" if watch else "Tshirts"},
            "baseColour": colour,
            "articleAttributes": {} if watch else {"Sleeve Length": "Short Sleeves"},
        }
        (root / "styles" / f"{product_id}.json").write_text(json.dumps({"data": data}))
        box = (90, 40, 134, 184) if watch else (40, 60, 184, 184)
        photo = _photo(BLUE if colour == "Blue" else RED, box)
        photo.paste((0, 0, 0), (2 * number, 0, 2 * number + 8, 8))  # every photo its own bytes
        photo.resize((96, 96)).save(root / "images" / f"{product_id}.jpg")
    return root


def test_real_model_trains_on_cached_features_and_real_eval_measures_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kaggle = _kaggle(tmp_path / "kaggle", 30)
    model_dir = tmp_path / "model"
    train_real_model(
        kaggle,
        model_dir,
        work_dir=tmp_path / "work",
        epochs=1,
        encoder_learning_rate=1e-4,  # the last block tuned, as --encoder-learning-rate asks
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    metadata = json.loads((model_dir / "describer_model.json").read_text())
    assert metadata["calibration"]["split"] == "val" and metadata["metrics"]["training_majority"]
    training_photos = metadata["metrics"]["products"]["train"]
    cached = list((tmp_path / "cache").rglob("*.npy"))
    # Each photo encoded once, validation too, and each training photo once more, mirrored.
    assert len(cached) == 30 + training_photos
    assert sum(entry.stem.endswith("-mirrored") for entry in cached) == training_photos

    # The last block moved away from ImageNet's weights; the blocks before it did not.
    trained = load_blip2(model_dir).vision_model.encoder.state_dict()
    imagenet = build_encoder(pretrained=True).state_dict()
    last, before = (
        f"_blocks.{block}._project_conv.weight" for block in (FIRST_TUNED_BLOCK, FIRST_TUNED_BLOCK - 1)
    )
    assert not torch.equal(trained[last], imagenet[last])
    assert torch.equal(trained[before], imagenet[before])

    report, curve = evaluate_real(kaggle, model_dir, tmp_path / "eval", macro_min_answers=10, progress=False)
    print_evaluation(report, tmp_path / "eval")
    lines = capsys.readouterr().out.strip().splitlines()[-6:]
    assert lines[0] == f"real photos: 30 products, {report.answers} answers"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "article type accuracy",
        "colour accuracy",
        "macro accuracy",
        "expected calibration error",
        "review share for 98% accuracy",
    ]
    assert report.answers == 30 + 20 + 20 + 10  # article type, t-shirt colour and sleeves, watch colour
    assert [score.in_macro for score in report.scores] == [True, True, True, False]  # >= 10 answers
    # The article type's confusions come first; two types have at most two confusions, all shown.
    assert next(iter(report.confusions)) == "generic/Article Type"
    article_errors = round((1 - report.article_type.accuracy) * report.article_type.answers)
    assert sum(item.count for item in report.confusions["generic/Article Type"]) == article_errors
    assert (tmp_path / "eval" / "review_effort.png").stat().st_size > 0
    assert (tmp_path / "eval" / "reliability.png").stat().st_size > 0
    assert len(curve) == report.answers

    # A model dir from before a weight was added is refused, not served with that weight at random.
    weights = model_dir / "model.safetensors"
    tensors = load_file(weights)
    save_file(
        {k: v for k, v in tensors.items() if "pooled_projection" not in k}, weights, metadata={"format": "pt"}
    )
    with pytest.raises(ValueError, match=r"pooled_projection.*train it again with make real-model"):
        load_blip2(model_dir)


def test_review_effort_and_ranking_measures() -> None:
    confidences = [0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [True, True, True, False, True]
    assert auroc(confidences, correct) == pytest.approx(0.75)  # the error ranks second lowest
    curve = review_curve(confidences, correct)
    assert [point.accuracy for point in curve] == [1.0, 1.0, 1.0, 0.75, 0.8]
    target = review_target(curve, 0.95)
    assert target.review_share == pytest.approx(0.4)  # keep the 3 most confident
    low, high = wilson_interval(3, 3)
    assert (target.low, target.high) == (low, high) and 0.4 < low < 0.5 and high == 1.0
    assert target.review_share_sure == 1.0  # three answers cannot show 95 % with confidence
