"""Stage: model."""
