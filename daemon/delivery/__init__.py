"""A claimed bundle delivered: HTTP or directory, answers, retries, back-off, pauses."""
