"""Measuring what a user sees: a baked portrait, played by the player, against its video."""
