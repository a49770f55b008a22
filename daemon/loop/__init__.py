"""The main loop: what changed, each bundle stepped and decided, timers, reload, stop."""
