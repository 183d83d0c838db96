"""Stage: eval."""
