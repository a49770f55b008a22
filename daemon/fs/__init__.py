"""Files and folders handled safely: no links, FIFOs or devices; atomic writes and moves."""
