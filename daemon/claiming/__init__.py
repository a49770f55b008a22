"""A decided bundle claimed into the processing folder, and claims finished after a crash."""
