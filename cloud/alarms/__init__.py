"""Alarms: lifecycle, decision engine (correlation, suppression, escalation, supervision), rules."""
