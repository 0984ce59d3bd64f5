"""`describer` sub-commands of the training area: dataset, train, evaluate, sagemaker."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def register(subparsers: Any) -> None:
    dataset = subparsers.add_parser("dataset", help="synthesise or prepare training data")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)

    synth = dataset_commands.add_parser("synth", help="write a synthetic catalogue in the Kaggle layout")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--products", type=int, required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--no-images", dest="images", action="store_false", help="metadata only")
    synth.set_defaults(handler=_synth)

    prepare = dataset_commands.add_parser(
        "prepare", help="Kaggle layout -> Q/A splits by product + catalogue"
    )
    prepare.add_argument("--kaggle-dir", type=Path, required=True)
    prepare.add_argument("--out", type=Path, required=True)
    prepare.add_argument(
        "--min-support", type=int, default=20, help="values on fewer products are folded/dropped"
    )
    prepare.add_argument(
        "--min-coverage", type=float, default=0.5, help="share of a type's products an attribute needs"
    )
    prepare.add_argument("--seed", type=int, default=0)
    prepare.add_argument("--val-fraction", type=float, default=0.1)
    prepare.add_argument("--test-fraction", type=float, default=0.1)
    prepare.add_argument(
        "--catalogue", type=Path, default=None, help="use this catalogue.json instead of deriving one"
    )
    prepare.set_defaults(handler=_prepare)

    catalogue = dataset_commands.add_parser("catalogue", help="derive only the catalogue (images not needed)")
    catalogue.add_argument("--kaggle-dir", type=Path, required=True)
    catalogue.add_argument("--out", type=Path, required=True, help="catalogue.json to write")
    catalogue.add_argument("--min-support", type=int, default=20)
    catalogue.add_argument("--min-coverage", type=float, default=0.5)
    catalogue.add_argument("--source", default=None, help="text for the catalogue's 'source' field")
    catalogue.set_defaults(handler=_catalogue)

    from training.train_config import add_train_arguments

    train = subparsers.add_parser(
        "train", help="fine-tune BLIP-2 with LoRA locally (the SageMaker entrypoint)"
    )
    add_train_arguments(train)
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser("evaluate", help="evaluate a model dir on held-out products")
    evaluate.add_argument("--model", type=Path, required=True, help="model directory")
    evaluate.add_argument("--data", type=Path, required=True, help="output of `describer dataset prepare`")
    evaluate.add_argument("--split", choices=("test", "val"), default="test")
    evaluate.add_argument("--no-base", dest="compare_base", action="store_false", help="skip the base model")
    evaluate.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where evaluation.json/.png, reliability.png go (default: --model)",
    )
    evaluate.set_defaults(handler=_evaluate)

    from training.sagemaker_launcher import register as register_sagemaker

    register_sagemaker(subparsers)


def _synth(args: argparse.Namespace) -> int:
    from training.synth import value_counts, write_synthetic_catalogue

    products = write_synthetic_catalogue(args.out, args.products, args.seed, images=args.images)
    table = Table(title=f"{len(products)} synthetic products in {args.out}")
    table.add_column("attribute")
    table.add_column("values (count)")
    for name, counts in value_counts(products).items():
        table.add_row(
            name, ", ".join(f"{value} {n}" for value, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        )
    Console().print(table)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from describer_core.catalogue import load_catalogue
    from training.prepare import prepare_dataset

    report = prepare_dataset(
        args.kaggle_dir,
        args.out,
        min_support=args.min_support,
        min_coverage=args.min_coverage,
        seed=args.seed,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        catalogue=load_catalogue(args.catalogue) if args.catalogue else None,
    )
    table = Table(title=f"prepared {args.out}")
    table.add_column("item")
    table.add_column("value", justify="right")
    rows = {
        "styles.csv rows": report.styles_rows,
        "rows with commas in the name (recovered)": len(report.recovered_comma_rows),
        "malformed lines (skipped)": len(report.malformed_lines),
        "missing / unreadable JSON": f"{report.missing_json} / {report.unreadable_json}",
        "missing / unreadable images": f"{report.missing_images} / {report.unreadable_images}",
        "NA attribute values": report.na_values,
        "products used / outside the catalogue": (
            f"{report.products_used} / {report.products_out_of_catalogue}"
        ),
        "answers dropped (rare values)": report.dropped_answers,
        **{
            f"{split}: products / Q&A rows": f"{report.products[split]} / {report.rows[split]}"
            for split in report.rows
        },
    }
    for item, value in rows.items():
        table.add_row(item, str(value))
    Console().print(table)
    print(f"report: {args.out / 'prep_report.json'}")
    return 0


def _catalogue(args: argparse.Namespace) -> int:
    from training.prepare import derive_catalogue, load_products

    products, _ = load_products(args.kaggle_dir, require_images=False)
    source = args.source or f"describer dataset catalogue: {len(products)} products of {args.kaggle_dir.name}"
    catalogue, folds, drops = derive_catalogue(
        products, min_support=args.min_support, min_coverage=args.min_coverage, source=source
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(catalogue.to_json(), encoding="utf-8")
    for category in catalogue.categories:
        print(f"{category.name}: {', '.join(spec.name for spec in category.attributes)}")
    print(f"folded {sum(map(len, folds.values()))} and dropped {sum(map(len, drops.values()))} rare values")
    print(f"catalogue written to {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from training.train import print_history, train
    from training.train_config import config_from_args

    config = config_from_args(args)
    model_dir = train(config)
    print_history(config.history)
    print(f"model written to {model_dir}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate, print_report

    out = args.out or args.model
    report = evaluate(args.model, args.data, split=args.split, compare_base=args.compare_base, out_dir=out)
    print(f"written: {out / 'evaluation.json'}, {out / 'evaluation.png'}, {out / 'reliability.png'}")
    print_report(report)
    return 0
