"""A settled bundle read: invoice ids, the sidecar matched, and the reader processes."""
