"""Each attachment's content checked against its channel's rules."""
