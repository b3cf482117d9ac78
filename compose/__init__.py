"""The local stack: real Kafka, Kubernetes API server, MinIO and GCS emulator on 127.0.0.1.

``docker-compose.yml`` beside this package serves machines with a Docker engine;
the native launcher here serves the ones without (this team's machines and CI).
It fetches or builds each service once into the user cache directory and runs
them as ordinary processes: ``kafkube stack up | down | status | env``.
"""
