"""keras_metacleaner.analysis."""
