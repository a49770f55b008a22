"""The outboxd bench (issue 5): outboxd against a plain httpx loop and an
inotifywait + curl script, on the same bundles and the same receiver.
Run `python -m bench --help` from the repository root."""
