"""REDI: Reinforcement Distillation from a teacher's positive and negative traces."""

__version__ = "0.1.0"
