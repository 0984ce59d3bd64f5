"""Application Auto Scaling for the endpoint's variant: target tracking on invocations per instance.

Sizing (docs/endpoint.md). ``SageMakerVariantInvocationsPerInstance`` counts InvokeEndpoint calls
per instance per minute. An instance that answers one call in ``s`` seconds with ``w`` workers
serves at most ``60 * w / s`` calls a minute; the target should sit at about half of that, so that
a scale-out (which takes minutes: a new GPU instance starts and loads the model) begins before the
instances saturate and throttle. A call asks up to ``QuestionsPerCall`` questions of one image, so
``s`` grows with it (``gpu_seconds_per_call``) and the target follows.

Scale-in is the batch-friendly part: a backfill's load is flat for hours and then stops, and a
short lull (a map run between batches) must not remove instances that are loaded and warm, so the
scale-in cooldown is long (15 minutes) while scale-out reacts within a minute. ``--no-scale-in``
holds the instance count at its high-water mark for the length of a backfill (turn it back on, or
redeploy, when the backfill is over).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from describer_rules.endpoint_calls import DEFAULT_QUESTIONS_PER_CALL

# Assumed, not measured (no GPU in this project's CI): seconds an ml.g5 instance spends on one
# InvokeEndpoint call of the fine-tuned BLIP-2 (a vision pass and its first question's decode), and on
# each further question decoded in the same call. `make cost` prices endpoint time with these; measure
# them with `make bench` on the instance and replace them.
GPU_SECONDS_PER_CALL = 0.40
GPU_SECONDS_PER_EXTRA_QUESTION = 0.05
# Target tracking holds each instance at about this share of what it can serve.
TARGET_UTILISATION = 0.5


def gpu_seconds_per_call(
    questions: float,
    per_call: float = GPU_SECONDS_PER_CALL,
    per_extra_question: float = GPU_SECONDS_PER_EXTRA_QUESTION,
) -> float:
    """GPU time of one call asking ``questions`` questions (a mean, too) about one image: modelled
    by default, or from measured seconds per call and per further question (``make gpu-bench``)."""
    return per_call + (questions - 1) * per_extra_question


SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_PER_INSTANCE = "SageMakerVariantInvocationsPerInstance"


@dataclass(frozen=True)
class EndpointScaling:
    min_instances: int = 1
    max_instances: int = 4
    # Calls per instance per minute: TARGET_UTILISATION of what one instance serves with one worker
    # when each call asks the pipeline's default QuestionsPerCall (4: 0.55 s, 109 a minute, so 54.5).
    invocations_per_instance: float = round(
        TARGET_UTILISATION * 60 / gpu_seconds_per_call(DEFAULT_QUESTIONS_PER_CALL), 1
    )
    scale_out_cooldown_s: int = 60
    scale_in_cooldown_s: int = 900
    scale_in: bool = True

    def __post_init__(self) -> None:
        # A real-time variant keeps at least one instance (scale to zero is for inference components).
        if not 1 <= self.min_instances <= self.max_instances:
            raise ValueError(f"need 1 <= min ({self.min_instances}) <= max ({self.max_instances}) instances")
        if self.invocations_per_instance <= 0:
            raise ValueError("the target invocations per instance must be positive")


def variant_resource_id(endpoint_name: str, variant_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def register_scaling(
    autoscaling_client: Any, endpoint_name: str, variant_name: str, scaling: EndpointScaling
) -> str:
    """Scalable target + target-tracking policy for one variant; returns the policy ARN.

    Both calls are idempotent (same names update in place), so a redeploy re-applies the options.
    """
    resource_id = variant_resource_id(endpoint_name, variant_name)
    autoscaling_client.register_scalable_target(
        ServiceNamespace=SERVICE_NAMESPACE,
        ResourceId=resource_id,
        ScalableDimension=SCALABLE_DIMENSION,
        MinCapacity=scaling.min_instances,
        MaxCapacity=scaling.max_instances,
    )
    response = autoscaling_client.put_scaling_policy(
        PolicyName=f"{endpoint_name}-invocations-per-instance",
        ServiceNamespace=SERVICE_NAMESPACE,
        ResourceId=resource_id,
        ScalableDimension=SCALABLE_DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": scaling.invocations_per_instance,
            "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_PER_INSTANCE},
            "ScaleOutCooldown": scaling.scale_out_cooldown_s,
            "ScaleInCooldown": scaling.scale_in_cooldown_s,
            "DisableScaleIn": not scaling.scale_in,
        },
    )
    return str(response["PolicyARN"])
