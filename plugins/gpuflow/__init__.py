"""gpuflow: run a GPU train-and-serve job on the cheapest available capacity across AWS, GCP and Azure.

The package lives in Airflow's plugins folder so that every Airflow component (the triggerer included)
can import it. ``gpuflow.core`` is pure logic with no Airflow or cloud SDK import.
"""
