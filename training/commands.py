"""`describer` sub-commands of the training area: dataset, catalogue, train, evaluate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from describer_rules.catalogue import DEFAULT_CATALOGUE_PATH
from training.dataset import CATALOGUE_MIN_COVERAGE, CATALOGUE_MIN_PRODUCTS, CATALOGUE_MIN_SUPPORT


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

    catalogue = subparsers.add_parser("catalogue", help="the attribute catalogue")
    catalogue_commands = catalogue.add_subparsers(dest="catalogue_command", required=True)
    build = catalogue_commands.add_parser(
        "build", help="build catalogue.json from the dataset's styles/*.json (metadata only)"
    )
    build.add_argument("--styles", type=Path, required=True, help="the dataset's styles/ folder")
    build.add_argument("--out", type=Path, default=DEFAULT_CATALOGUE_PATH, help="catalogue.json to write")
    build.add_argument("--min-products", type=int, default=CATALOGUE_MIN_PRODUCTS)
    build.add_argument("--min-support", type=int, default=CATALOGUE_MIN_SUPPORT)
    build.add_argument("--min-coverage", type=float, default=CATALOGUE_MIN_COVERAGE)
    build.add_argument("--report", type=Path, default=None, help="also write the report as JSON here")
    build.set_defaults(handler=_catalogue_build)

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
    from describer_rules.catalogue import load_catalogue
    from training.dataset import prepare_dataset

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


def _catalogue_build(args: argparse.Namespace) -> int:
    import json
    from collections import Counter

    from training.dataset import build_catalogue, load_styles, question_answer_rows

    catalogue, report = build_catalogue(
        args.styles,
        min_products=args.min_products,
        min_support=args.min_support,
        min_coverage=args.min_coverage,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(catalogue.to_json(), encoding="utf-8")
    # The Q/A pairs preparation makes of the same metadata against the new catalogue, per category.
    qa_pairs: Counter[str] = Counter()
    qa_dropped = 0
    for product in load_styles(args.styles, progress=False)[0]:
        rows, dropped = question_answer_rows(product, catalogue)
        qa_pairs.update(row["article_type"] for row in rows)
        qa_dropped += dropped
    if args.report:
        written = {**report.model_dump(mode="json"), "qa_pairs": dict(qa_pairs), "qa_dropped": qa_dropped}
        args.report.write_text(json.dumps(written, indent=2) + "\n", encoding="utf-8")
    table = Table(title=f"{len(report.categories)} categories in {args.out}")
    table.add_column("category")
    table.add_column("products", justify="right")
    table.add_column("Q/A pairs", justify="right")
    table.add_column("attributes (values)")
    for category in catalogue.categories:
        attributes = ", ".join(f"{spec.name} ({len(spec.values)})" for spec in category.attributes)
        table.add_row(
            category.name,
            str(report.categories.get(category.name, "")),
            str(qa_pairs.get(category.name, "")),
            attributes,
        )
    Console().print(table)
    for article_type, why in report.excluded_types.items():
        print(f"not a category: {article_type} ({why})")
    styles = report.styles
    dropped = sum(map(len, report.dropped_values.values()))
    dropped_products = sum(n for values in report.dropped_values.values() for n in values.values())
    print(
        f"{styles.files} styles files ({len(styles.unreadable)} unreadable, "
        f"{len(styles.no_article_type)} without an article type, {styles.csv_only} products from "
        f"styles.csv only), {styles.na_values} NA values"
    )
    print(
        f"{report.article_types} article types, {report.types_with_enough_products} with >= "
        f"{report.min_products} products, {len(report.categories)} categories; {report.folded_values} rare "
        f"values folded, {dropped} outside every vocabulary dropped ({dropped_products} answers)"
    )
    print(
        f"{sum(qa_pairs.values())} Q/A pairs from the metadata (dataset prepare), {qa_dropped} answers "
        "outside the vocabulary not asked"
    )
    from describer_rules.feeds.taxonomy import write_mapping

    mapping_path, unmapped = write_mapping(catalogue, args.out)
    for line in unmapped:
        print(line)
    print(f"catalogue written to {args.out}, its channel categories to {mapping_path}")
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
