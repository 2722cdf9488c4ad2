"""One module per model family: how its weights are found, loaded and run."""
