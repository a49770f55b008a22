"""What outboxd shows of itself: `status`, the status page, STATUS= and sd_notify."""
