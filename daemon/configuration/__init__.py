"""The configuration: its schema, values, loading, credentials and the folders it names."""
