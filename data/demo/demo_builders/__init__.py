"""The embedded demo: a small real-text corpus (WordNet 3.0), a task mixture derived from it, and a tiny T5.

Everything here is rebuilt by committed scripts (`PYTHONPATH=data/demo python -m demo_builders.corpus`, `.tasks`, `.tokenizer`, `.pretrain`);
the outputs live in `data/demo/` so that `make demo` only fine-tunes and evaluates.
"""
