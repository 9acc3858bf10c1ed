"""Kubernetes manifests as plain dicts (Kubernetes JSON casing): placement, the training pod, the vLLM endpoint.

Pure: nothing here talks to a cluster or imports Airflow, so every manifest is testable against the schema.
"""
