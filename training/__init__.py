"""Fine-tuning BLIP-2 on product photos: data preparation, LoRA training, evaluation, SageMaker."""
