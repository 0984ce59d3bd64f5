"""Facts about the full BLIP-2 (blip2-flan-t5-xl) computed on the meta device: no weights, no download.

``python -m training.facts`` prints the parameter counts, the trainable share under the default
LoRA (r=8, alpha=32, dropout 0.05, on the T5 attention's q and v) and the GPU memory the weights
take in bf16 and in 8-bit (bitsandbytes LLM.int8: linear layers in int8 except the LM head; the
Q-Former and query tokens stay fp32 as transformers keeps them; everything else bf16).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel

GIB = 1024**3


class ModelFacts(BaseModel):
    total_parameters: int
    vision_parameters: int
    qformer_parameters: int
    language_parameters: int
    lora_trainable_parameters: int
    lora_trainable_percent: float
    bf16_weights_gib: float
    int8_weights_gib: float
    lora_optimizer_state_gib: float


def _bytes_per_parameter(name: str, module: Any, eight_bit: bool) -> int:
    if name.startswith(("qformer", "query_tokens")) or ".qformer." in name:
        return 4  # Blip2's _keep_in_fp32_modules
    if eight_bit and isinstance(module, torch.nn.Linear) and not name.endswith("lm_head"):
        return 1
    return 2


def weight_bytes(model: torch.nn.Module, eight_bit: bool) -> int:
    total = 0
    for module_name, module in model.named_modules():
        for parameter_name, parameter in module.named_parameters(recurse=False):
            full_name = f"{module_name}.{parameter_name}" if module_name else parameter_name
            per_parameter = _bytes_per_parameter(module_name or full_name, module, eight_bit)
            if parameter_name == "bias":
                per_parameter = max(per_parameter, 2)  # int8 layers keep their bias in bf16
            total += parameter.numel() * per_parameter
    return total


def blip2_facts(lora_r: int = 8, lora_alpha: int = 32, targets: tuple[str, ...] = ("q", "v")) -> ModelFacts:
    from peft import LoraConfig, get_peft_model
    from transformers import Blip2ForConditionalGeneration

    from training.tiny import blip2_config

    with torch.device("meta"):
        model = Blip2ForConditionalGeneration(blip2_config("blip2-flan-t5-xl"))
    parts = {name: sum(p.numel() for p in getattr(model, name).parameters())
             for name in ("vision_model", "qformer", "language_model")}  # fmt: skip
    total = sum(p.numel() for p in model.parameters())
    bf16 = weight_bytes(model, eight_bit=False)
    int8 = weight_bytes(model, eight_bit=True)
    lora = get_peft_model(
        model, LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.05, target_modules=list(targets))
    )
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    return ModelFacts(
        total_parameters=total,
        vision_parameters=parts["vision_model"],
        qformer_parameters=parts["qformer"],
        language_parameters=parts["language_model"],
        lora_trainable_parameters=trainable,
        lora_trainable_percent=100 * trainable / total,
        bf16_weights_gib=bf16 / GIB,
        int8_weights_gib=int8 / GIB,
        # AdamW in fp32: the LoRA weights, their gradients and two moments.
        lora_optimizer_state_gib=trainable * 4 * 4 / GIB,
    )


def main() -> int:
    facts = blip2_facts()
    print(f"blip2-flan-t5-xl parameters: {facts.total_parameters:,}")
    print(f"  vision encoder {facts.vision_parameters:,}, Q-Former {facts.qformer_parameters:,}, "
          f"Flan-T5-XL {facts.language_parameters:,}")  # fmt: skip
    ratio = facts.total_parameters / facts.lora_trainable_parameters
    print(
        f"LoRA r=8 on q,v: {facts.lora_trainable_parameters:,} trainable "
        f"({facts.lora_trainable_percent:.2f} %, {ratio:.0f}x fewer)"
    )
    print(f"weights in bf16: {facts.bf16_weights_gib:.1f} GiB; in 8-bit: {facts.int8_weights_gib:.1f} GiB")
    print(f"LoRA weights + grads + AdamW moments (fp32): {facts.lora_optimizer_state_gib:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
