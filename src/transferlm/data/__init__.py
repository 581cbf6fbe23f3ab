"""Data: corpus shards, task-format readers, collators, and the offline assets."""
