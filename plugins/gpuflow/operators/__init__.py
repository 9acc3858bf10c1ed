"""Airflow operators: thin adapters from a task's context to one call on gpuflow's pure layers."""
