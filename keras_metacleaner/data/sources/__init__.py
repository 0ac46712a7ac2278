"""Dataset sources: each turns files on disk into `(train, test, info)`."""
