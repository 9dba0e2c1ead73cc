"""Evidence on a model trained here (issue #9): the disc family, its metrics, the demo model's trainer and the evaluation."""
