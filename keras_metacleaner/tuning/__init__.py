"""keras_metacleaner.tuning."""
