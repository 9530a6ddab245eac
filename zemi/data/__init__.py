"""Data: reading the "30aug" retrieval-augmented P3 layout, turning it into model inputs, and building it."""
