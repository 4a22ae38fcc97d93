"""Act: linkage commands with tracked outcomes, work orders with SLA timers, notifications."""
