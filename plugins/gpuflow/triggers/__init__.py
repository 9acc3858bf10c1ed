"""Deferrable waits, run by the triggerer. Every trigger emits events of ``gpuflow.triggers.events``."""
