"""Pure logic: request and plan models, catalog, planner, naming, cost, errors. No Airflow, no cloud SDK."""
