"""A finished bundle archived in sent/ or quarantine/ with its papers."""
