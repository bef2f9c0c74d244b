"""The one training loop (stage 1 and stage 3), its schedules, checkpoints and distributed setup."""
