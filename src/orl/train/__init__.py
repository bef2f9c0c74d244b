"""Pre-training: the one loop (stage 1 and stage 3), the method switch, stage 3's views, the
schedules, the resumable run state and the run logs."""
