"""SageMaker launcher (SDK 3.x): the training job with ``ModelTrainer``, the endpoint with sagemaker-core.

``describer sagemaker train``: uploads a prepared data dir to S3, stages the training code (this
package, ``describer_rules``, requirements) and starts a training job on a Hugging Face PyTorch
training image that runs ``training/train.py`` with the hyperparameters as ``--name value`` args.
``describer sagemaker deploy``: packs a merged model dir (weights, processor, ``code/``) as
``model.tar.gz`` on S3 and creates Model, EndpointConfig and Endpoint on a Hugging Face PyTorch
inference image, whose toolkit runs ``code/inference.py``. The variant routes with
``PREFIX_AWARE``, so the pipeline's calls for one image reach the instance holding its vision
features (``describer_rules.endpoint_calls``); once the endpoint is InService, it is registered with
Application Auto Scaling (``describer.sagemaker.scaling``).
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from tqdm import tqdm

import training
from describer.sagemaker.scaling import EndpointScaling, register_scaling
from describer_rules.endpoint_calls import ROUTING_CONCURRENCY_THRESHOLD, ROUTING_PREFIX_BYTES
from training.model_dir import copy_shared_packages

DEFAULT_INSTANCE_TYPE = "ml.g5.2xlarge"
# Serving needs the same A10G but not the training job's memory: the smaller instance is 7% cheaper
# an hour (`make cost`).
DEFAULT_ENDPOINT_INSTANCE_TYPE = "ml.g5.xlarge"
DEFAULT_BASE_MODEL = "Salesforce/blip2-flan-t5-xl"
# Hugging Face DLCs with transformers 5 (sagemaker.core.image_uris, huggingface.json).
TRAINING_IMAGE = {"version": "5.3.0", "base_framework_version": "pytorch2.9.0"}
INFERENCE_IMAGE = {"version": "5.5.3", "base_framework_version": "pytorch2.6.0"}
TRAINING_REQUIREMENTS = ("peft", "bitsandbytes", "pydantic>=2.7,<3", "rich", "tqdm", "matplotlib")
# The reference recipe on a real BLIP-2: 10 epochs, LoRA r=8/alpha=32/dropout 0.05 on q,v, 8-bit base.
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "base-model": DEFAULT_BASE_MODEL,
    "epochs": 10,
    "batch-size": 8,
    "learning-rate": 1e-4,
    "lora-r": 8,
    "lora-alpha": 32,
    "lora-dropout": 0.05,
    "lora-targets": "q,v",
    "quantization": "8bit",
}
ENTRY_SCRIPT = "sagemaker_entry.py"
VARIANT_NAME = "AllTraffic"


@dataclass
class TrainingLaunch:
    data_dir: Path
    role: str
    bucket: str
    prefix: str = "describer"
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    max_runtime_s: int = 24 * 3600
    job_name: str | None = None
    image_uri: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    wait: bool = False


@dataclass
class EndpointLaunch:
    model_dir: Path
    role: str
    bucket: str
    endpoint_name: str
    prefix: str = "describer"
    instance_type: str = DEFAULT_ENDPOINT_INSTANCE_TYPE
    instance_count: int = 1
    image_uri: str | None = None
    wait: bool = False
    # Application Auto Scaling of the variant; None: a fixed instance_count.
    scaling: EndpointScaling | None = field(default_factory=EndpointScaling)


def upload_dir(session: boto3.session.Session, local: Path, bucket: str, key_prefix: str) -> str:
    """Upload every file under ``local`` to ``s3://bucket/key_prefix/``, with a progress bar."""
    s3 = session.client("s3")
    files = [path for path in sorted(Path(local).rglob("*")) if path.is_file()]
    for path in tqdm(files, desc=f"uploading to s3://{bucket}/{key_prefix}", unit="file"):
        s3.upload_file(str(path), bucket, f"{key_prefix}/{path.relative_to(local).as_posix()}")
    return f"s3://{bucket}/{key_prefix}"


def stage_training_code(target: Path) -> Path:
    """The job's source dir: the ``training``, ``endpoint`` (its scoring calibrates the model, and a
    model dir ships it) and ``describer_rules`` packages, requirements, entry script."""
    package = Path(training.__file__).parent
    shutil.copytree(
        package, target / "training", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests")
    )
    copy_shared_packages(target)
    (target / "requirements.txt").write_text("\n".join(TRAINING_REQUIREMENTS) + "\n", encoding="utf-8")
    (target / ENTRY_SCRIPT).write_text(
        '"""SageMaker entry point: hyperparameters arrive as --name value arguments."""\n'
        "import sys\n\nfrom training.train import main\n\nsys.exit(main())\n",
        encoding="utf-8",
    )
    return target


def _image(region: str, scope: str, instance_type: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    from sagemaker.core import image_uris

    versions = TRAINING_IMAGE if scope == "training" else INFERENCE_IMAGE
    return str(
        image_uris.retrieve(
            "huggingface", region=region, instance_type=instance_type, image_scope=scope, **versions
        )
    )


def _region(session: boto3.session.Session) -> str:
    if not session.region_name:
        raise ValueError("no AWS region: set AWS_DEFAULT_REGION or pass --region")
    return session.region_name


def launch_training(launch: TrainingLaunch, session: boto3.session.Session) -> str:
    """Upload the data, start the training job; returns the job name."""
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.training.configs import (
        Compute,
        InputData,
        OutputDataConfig,
        SourceCode,
        StoppingCondition,
    )
    from sagemaker.train import ModelTrainer

    region = _region(session)
    base_name = launch.job_name or "describer-train"
    run_name = f"{base_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    data_uri = upload_dir(session, launch.data_dir, launch.bucket, f"{launch.prefix}/data/{run_name}")
    hyperparameters = {**DEFAULT_HYPERPARAMETERS, **launch.hyperparameters, "model-id": run_name}
    with tempfile.TemporaryDirectory(prefix="describer-code-") as code:
        trainer = ModelTrainer(
            sagemaker_session=Session(boto_session=session, default_bucket=launch.bucket),
            role=launch.role,
            base_job_name=base_name,
            training_image=_image(region, "training", launch.instance_type, launch.image_uri),
            source_code=SourceCode(
                source_dir=str(stage_training_code(Path(code))),
                entry_script=ENTRY_SCRIPT,
                requirements="requirements.txt",
            ),
            compute=Compute(
                instance_type=launch.instance_type,
                instance_count=launch.instance_count,
                volume_size_in_gb=100,
            ),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=launch.max_runtime_s),
            output_data_config=OutputDataConfig(s3_output_path=f"s3://{launch.bucket}/{launch.prefix}/jobs"),
            hyperparameters=hyperparameters,
            environment={"PYTHONUNBUFFERED": "1"},
        )
        trainer.train(
            input_data_config=[InputData(channel_name="train", data_source=data_uri)], wait=launch.wait
        )
    job = trainer._latest_training_job
    return str(job.training_job_name) if job is not None else run_name


def pack_model_dir(model_dir: Path, archive: Path) -> Path:
    """``model.tar.gz`` with the model dir's contents at the archive root (what SageMaker expects)."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(Path(model_dir).iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def deploy_endpoint(launch: EndpointLaunch, session: boto3.session.Session) -> str:
    """Upload the merged model and create Model -> EndpointConfig -> Endpoint; returns the endpoint name."""
    from sagemaker.core.resources import Endpoint, EndpointConfig, Model
    from sagemaker.core.shapes import (
        ContainerDefinition,
        PrefixAwareRoutingConfig,
        ProductionVariant,
        ProductionVariantRoutingConfig,
    )

    if not (Path(launch.model_dir) / "code" / "inference.py").is_file():
        raise FileNotFoundError(f"{launch.model_dir} is not a describer model dir (no code/inference.py)")
    region = _region(session)
    name = launch.endpoint_name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="describer-deploy-") as work:
        archive = pack_model_dir(launch.model_dir, Path(work) / "model.tar.gz")
        key = f"{launch.prefix}/models/{name}-{stamp}/model.tar.gz"
        session.client("s3").upload_file(str(archive), launch.bucket, key)
    model = Model.create(
        model_name=f"{name}-{stamp}",
        execution_role_arn=launch.role,
        primary_container=ContainerDefinition(
            image=_image(region, "inference", launch.instance_type, launch.image_uri),
            model_data_url=f"s3://{launch.bucket}/{key}",
            environment={
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                # One model server worker per GPU: one model copy, one vision cache, one batcher
                # (docs/endpoint.md#concurrent-requests).
                "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            },
        ),
        session=session,
        region=region,
    )
    config = EndpointConfig.create(
        endpoint_config_name=f"{name}-{stamp}",
        production_variants=[
            ProductionVariant(
                variant_name=VARIANT_NAME,
                model_name=model.model_name,
                initial_instance_count=launch.instance_count,
                instance_type=launch.instance_type,
                routing_config=ProductionVariantRoutingConfig(
                    routing_strategy="PREFIX_AWARE",
                    prefix_aware_routing_config=PrefixAwareRoutingConfig(
                        prefix_length=ROUTING_PREFIX_BYTES,
                        concurrency_threshold=ROUTING_CONCURRENCY_THRESHOLD,
                    ),
                ),
            )
        ],
        session=session,
        region=region,
    )
    endpoint = Endpoint.create(
        endpoint_name=name, endpoint_config_name=config.endpoint_config_name, session=session, region=region
    )
    # Application Auto Scaling accepts a variant only once its endpoint is InService.
    if launch.wait or launch.scaling is not None:
        endpoint.wait_for_status("InService")
    if launch.scaling is not None:
        register_scaling(session.client("application-autoscaling"), name, VARIANT_NAME, launch.scaling)
    return name


def _key_values(pairs: list[str]) -> Iterator[tuple[str, str]]:
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {pair!r}")
        yield key.strip(), value.strip()


def register(subparsers: Any) -> None:
    sagemaker = subparsers.add_parser("sagemaker", help="train or deploy on Amazon SageMaker")
    commands = sagemaker.add_subparsers(dest="sagemaker_command", required=True)
    for name, helptext in (
        ("train", "start a training job"),
        ("deploy", "deploy a model dir to an endpoint"),
    ):
        command = commands.add_parser(name, help=helptext)
        command.add_argument("--role", required=True, help="SageMaker execution role ARN")
        command.add_argument("--bucket", required=True, help="S3 bucket for data and models")
        command.add_argument("--prefix", default="describer")
        command.add_argument("--region", default=None)
        command.add_argument(
            "--instance-type",
            default=DEFAULT_INSTANCE_TYPE if name == "train" else DEFAULT_ENDPOINT_INSTANCE_TYPE,
        )
        command.add_argument("--instance-count", type=int, default=1)
        command.add_argument(
            "--image-uri",
            default=None,
            help="override the Hugging Face DLC; deploy: e.g. make serving-image's (requests share batches)",
        )
        command.add_argument("--wait", action="store_true")
    train, deploy = commands.choices["train"], commands.choices["deploy"]
    train.add_argument("--data", type=Path, required=True, help="output of `describer dataset prepare`")
    train.add_argument("--job-name", default=None)
    train.add_argument("--max-runtime-s", type=int, default=24 * 3600)
    train.add_argument(
        "--hyperparameter",
        "-H",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override a training argument (defaults: {DEFAULT_HYPERPARAMETERS})",
    )
    train.set_defaults(handler=_train_command)
    deploy.add_argument("--model", type=Path, required=True, help="merged model dir")
    deploy.add_argument("--endpoint-name", required=True)
    scaling = EndpointScaling()
    deploy.add_argument("--min-instances", type=int, default=scaling.min_instances)
    deploy.add_argument("--max-instances", type=int, default=scaling.max_instances)
    deploy.add_argument(
        "--target-invocations",
        type=float,
        default=scaling.invocations_per_instance,
        help="target InvokeEndpoint calls per instance per minute (docs/endpoint.md: sizing)",
    )
    deploy.add_argument("--scale-in-cooldown-s", type=int, default=scaling.scale_in_cooldown_s)
    deploy.add_argument(
        "--no-scale-in", action="store_true", help="hold the instance count for a backfill's duration"
    )
    deploy.add_argument("--no-autoscaling", action="store_true", help="a fixed --instance-count")
    deploy.set_defaults(handler=_deploy_command)


def _session(region: str | None) -> boto3.session.Session:
    return boto3.session.Session(region_name=region) if region else boto3.session.Session()


def _train_command(args: argparse.Namespace) -> int:
    hyperparameters: Mapping[str, str] = dict(_key_values(args.hyperparameter))
    launch = TrainingLaunch(
        data_dir=args.data,
        role=args.role,
        bucket=args.bucket,
        prefix=args.prefix,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        max_runtime_s=args.max_runtime_s,
        job_name=args.job_name,
        image_uri=args.image_uri,
        hyperparameters=dict(hyperparameters),
        wait=args.wait,
    )
    print(f"training job: {launch_training(launch, _session(args.region))}")
    return 0


def _deploy_command(args: argparse.Namespace) -> int:
    launch = EndpointLaunch(
        model_dir=args.model,
        role=args.role,
        bucket=args.bucket,
        endpoint_name=args.endpoint_name,
        prefix=args.prefix,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        image_uri=args.image_uri,
        wait=args.wait,
        scaling=None
        if args.no_autoscaling
        else EndpointScaling(
            min_instances=args.min_instances,
            max_instances=args.max_instances,
            invocations_per_instance=args.target_invocations,
            scale_in_cooldown_s=args.scale_in_cooldown_s,
            scale_in=not args.no_scale_in,
        ),
    )
    print(f"endpoint: {deploy_endpoint(launch, _session(args.region))}")
    return 0
