"""The gateway agent: pollers, device bridge, rules, linkage, outbox and uplink, video analytics."""
