"""Stereo4D data: clip reading, training targets, the Grain pipeline and synthetic clips."""
