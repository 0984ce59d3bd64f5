"""The review desk: people accept, correct or reject what the model was unsure of (docs/review.md)."""
