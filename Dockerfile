# The image every Airflow component of docker-compose.yaml runs: the official Airflow image plus gpuflow's
# pinned requirements. dags/, plugins/ and include/ are mounted, not baked in, so edits need no rebuild.
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir -r /requirements.txt
