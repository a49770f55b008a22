"""The outbox seen: watcher or poller, listings, snapshots, settling, the mounts."""
