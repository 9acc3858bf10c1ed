"""Serving with vLLM: its arguments, an OpenAI-compatible client, the smoke test and the benchmark.

Nothing here imports Airflow; the operators call these functions.
"""
