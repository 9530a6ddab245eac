"""Data: reading the "30aug" retrieval-augmented P3 layout, turning it into model inputs, and building it."""

# Here rather than in tokenized.py (the sampler that uses it) so that zemi plot, which marks the windows on its
# loss plot, reads it without loading torch and datasets (seconds per plot).
MEGABATCH_FACTOR = 50  # --group_by_length sorts windows of 50 global batches
