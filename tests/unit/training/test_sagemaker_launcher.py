"""The SageMaker launcher's requests, against moto (never a real account)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from describer.sagemaker.launcher import (
    DEFAULT_INSTANCE_TYPE,
    ENTRY_SCRIPT,
    EndpointLaunch,
    TrainingLaunch,
    deploy_endpoint,
    launch_training,
    stage_training_code,
)
from describer.sagemaker.scaling import INVOCATIONS_PER_INSTANCE, EndpointScaling, register_scaling

BUCKET = "describer-launcher-test"
REGION = "eu-west-1"


@pytest.fixture
def aws(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[boto3.session.Session, list[tuple[str, dict[str, Any]]], str]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "SAGEMAKER_VALIDATE_ROLE": "false",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        session.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        role = session.client("iam").create_role(
            RoleName="describer-sagemaker", AssumeRolePolicyDocument="{}"
        )
        requests: list[tuple[str, dict[str, Any]]] = []

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            requests.append((model.name, dict(params)))

        def drop_empty_shapes(parsed: dict[str, Any], **_: Any) -> None:
            # moto describes absent optional shapes (VpcConfig, DataCaptureConfig) as empty ones,
            # which sagemaker-core's response models reject; the real API omits them.
            for key in [
                key for key, value in parsed.items() if isinstance(value, dict) and not any(value.values())
            ]:
                if key != "ResponseMetadata":
                    parsed.pop(key)

        session.events.register("before-parameter-build.sagemaker", record)
        session.events.register("after-call.sagemaker", drop_empty_shapes)
        yield session, requests, role["Role"]["Arn"]


def _request(requests: list[tuple[str, dict[str, Any]]], operation: str) -> dict[str, Any]:
    matches = [params for name, params in requests if name == operation]
    assert len(matches) == 1, f"{operation}: {len(matches)} requests"
    return matches[0]


def test_training_job_request(aws: tuple[boto3.session.Session, list, str], tmp_path: Path) -> None:
    session, requests, role = aws
    data = tmp_path / "prepared"
    (data / "images").mkdir(parents=True)
    (data / "vqa_train.csv").write_text("id,image,attribute,question,answer\n")
    (data / "images" / "1.jpg").write_bytes(b"jpeg")
    launch = TrainingLaunch(
        data_dir=data, role=role, bucket=BUCKET, job_name="describer-unit", hyperparameters={"epochs": "3"}
    )
    job_name = launch_training(launch, session)

    request = _request(requests, "CreateTrainingJob")
    assert request["TrainingJobName"] == job_name
    assert request["RoleArn"] == role
    assert request["ResourceConfig"]["InstanceType"] == DEFAULT_INSTANCE_TYPE == "ml.g5.2xlarge"
    image = request["AlgorithmSpecification"]["TrainingImage"]
    assert "huggingface-pytorch-training" in image and "transformers5" in image
    hyperparameters = request["HyperParameters"]
    assert hyperparameters["epochs"] == "3"
    assert (hyperparameters["lora-r"], hyperparameters["lora-alpha"], hyperparameters["lora-dropout"]) == (
        "8",
        "32",
        "0.05",
    )
    assert hyperparameters["lora-targets"] == "q,v"
    assert hyperparameters["base-model"] == "Salesforce/blip2-flan-t5-xl"
    channels = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in request["InputDataConfig"]
    }
    assert channels["train"].startswith(f"s3://{BUCKET}/describer/data/describer-unit")
    uploaded = {obj["Key"] for obj in session.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    train_prefix = channels["train"].removeprefix(f"s3://{BUCKET}/")
    assert {f"{train_prefix}/vqa_train.csv", f"{train_prefix}/images/1.jpg"} <= uploaded
    assert any(key.endswith("training/train.py") for key in uploaded)  # the staged source dir
    assert request["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/describer/jobs"


def test_deploy_requests_model_config_and_endpoint(
    aws: tuple[boto3.session.Session, list, str], tmp_path: Path
) -> None:
    session, requests, role = aws
    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "config.json").write_text("{}")
    (model_dir / "code" / "inference.py").write_text("def model_fn(model_dir): ...\n")
    launch = EndpointLaunch(
        model_dir=model_dir,
        role=role,
        bucket=BUCKET,
        endpoint_name="describer-unit",
        instance_type="ml.g4dn.xlarge",
    )
    assert deploy_endpoint(launch, session) == "describer-unit"

    model = _request(requests, "CreateModel")
    container = model["PrimaryContainer"]
    assert model["ExecutionRoleArn"] == role
    assert "huggingface-pytorch-inference" in container["Image"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1"
    config = _request(requests, "CreateEndpointConfig")
    [variant] = config["ProductionVariants"]
    assert variant["ModelName"] == model["ModelName"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.g4dn.xlarge", 1)
    # A product's calls (same PrefixAwareId, same first 1,024 body bytes) go to one instance.
    assert variant["RoutingConfig"] == {
        "RoutingStrategy": "PREFIX_AWARE",
        "PrefixAwareRoutingConfig": {"PrefixLength": 1024, "ConcurrencyThreshold": 16},
    }
    endpoint = _request(requests, "CreateEndpoint")
    assert endpoint == {"EndpointName": "describer-unit", "EndpointConfigName": config["EndpointConfigName"]}

    key = container["ModelDataUrl"].removeprefix(f"s3://{BUCKET}/")
    archive = tmp_path / "model.tar.gz"
    session.client("s3").download_file(BUCKET, key, str(archive))
    with tarfile.open(archive) as tar:
        assert {"config.json", "code/inference.py"} <= set(tar.getnames())


def test_deploy_refuses_a_dir_without_endpoint_code(
    aws: tuple[boto3.session.Session, list, str], tmp_path: Path
) -> None:
    session, requests, role = aws
    with pytest.raises(FileNotFoundError, match=r"inference\.py"):
        deploy_endpoint(
            EndpointLaunch(model_dir=tmp_path, role=role, bucket=BUCKET, endpoint_name="x"), session
        )
    assert not requests


def _endpoint_model_dir(tmp_path: Path) -> Path:
    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text("def model_fn(model_dir): ...\n")
    return model_dir


def test_deploy_registers_the_variant_with_target_tracking(
    aws: tuple[boto3.session.Session, list, str], tmp_path: Path
) -> None:
    session, _, role = aws
    scaling = EndpointScaling(min_instances=1, max_instances=6, invocations_per_instance=90.0, scale_in=False)
    launch = EndpointLaunch(
        model_dir=_endpoint_model_dir(tmp_path),
        role=role,
        bucket=BUCKET,
        endpoint_name="describer-scaled",
        instance_type="ml.g4dn.xlarge",  # moto knows no g5 instance types
        scaling=scaling,
    )
    deploy_endpoint(launch, session)

    autoscaling = session.client("application-autoscaling")
    [target] = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == "endpoint/describer-scaled/variant/AllTraffic"
    assert (target["ScalableDimension"], target["MinCapacity"], target["MaxCapacity"]) == (
        "sagemaker:variant:DesiredInstanceCount",
        1,
        6,
    )
    [policy] = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == INVOCATIONS_PER_INSTANCE
    assert (tracking["TargetValue"], tracking["DisableScaleIn"]) == (90.0, True)


def test_deploy_without_autoscaling_registers_nothing(
    aws: tuple[boto3.session.Session, list, str], tmp_path: Path
) -> None:
    session, _, role = aws
    launch = EndpointLaunch(
        model_dir=_endpoint_model_dir(tmp_path),
        role=role,
        bucket=BUCKET,
        endpoint_name="fixed",
        instance_type="ml.g4dn.xlarge",
        scaling=None,
    )
    deploy_endpoint(launch, session)
    autoscaling = session.client("application-autoscaling")
    assert autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []


def test_scaling_requests_are_exact() -> None:
    client = botocore.session.get_session().create_client(
        "application-autoscaling", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    resource = "endpoint/ep/variant/AllTraffic"
    with Stubber(client) as stub:
        stub.add_response(
            "register_scalable_target",
            {},
            {
                "ServiceNamespace": "sagemaker",
                "ResourceId": resource,
                "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
                "MinCapacity": 2,
                "MaxCapacity": 8,
            },
        )
        stub.add_response(
            "put_scaling_policy",
            {"PolicyARN": "arn:aws:autoscaling:policy/ep"},
            {
                "PolicyName": "ep-invocations-per-instance",
                "ServiceNamespace": "sagemaker",
                "ResourceId": resource,
                "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": 54.5,
                    "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_PER_INSTANCE},
                    "ScaleOutCooldown": 60,
                    "ScaleInCooldown": 900,
                    "DisableScaleIn": False,
                },
            },
        )
        scaling = EndpointScaling(min_instances=2, max_instances=8)
        assert register_scaling(client, "ep", "AllTraffic", scaling) == "arn:aws:autoscaling:policy/ep"
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(("low", "high", "target"), [(0, 2, 60.0), (3, 2, 60.0), (1, 2, 0.0)])
def test_scaling_options_are_checked(low: int, high: int, target: float) -> None:
    with pytest.raises(ValueError):
        EndpointScaling(min_instances=low, max_instances=high, invocations_per_instance=target)


def test_the_training_jobs_source_dir_holds_every_package_training_imports(tmp_path: Path) -> None:
    """As the job runs it: only the staged dir on the path, and ``training.train`` imports nothing else
    of this repository's (its calibration scores with the endpoint's code)."""
    staged = stage_training_code(tmp_path / "source")
    script = (
        "import training.train, training.model_dir, endpoint.model, describer_rules.answers, sys; "
        "ours = ('training', 'endpoint', 'describer_rules'); "
        "print('\\n'.join(sorted({m.__file__ for n, m in sys.modules.items() "
        "if n.split('.')[0] in ours and getattr(m, '__file__', None)})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(staged)},
        capture_output=True,
        text=True,
        check=True,
    )
    files = result.stdout.split()
    assert files and all(file.startswith(str(staged)) for file in files), files
    assert (staged / ENTRY_SCRIPT).is_file()
