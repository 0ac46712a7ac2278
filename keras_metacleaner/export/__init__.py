"""keras_metacleaner.export."""
