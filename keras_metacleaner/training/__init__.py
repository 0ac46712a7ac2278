"""keras_metacleaner.training."""
