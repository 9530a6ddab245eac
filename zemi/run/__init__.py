"""The run layer: configuration, the method a run trains, the training loop, evaluation and the run directory."""
