"""keras_metacleaner.data."""
