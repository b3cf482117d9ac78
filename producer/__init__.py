"""Watches Kubernetes events and publishes them to Kafka as Avro."""
