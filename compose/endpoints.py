"""Where the stack's services answer, as the variables every client already understands."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    kubeconfig: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str
    gcs_endpoint: str
    schema_registry_url: str

    def store(self, scheme: str) -> str:
        """The endpoint of the emulator that serves ``<scheme>://`` locations."""
        endpoints = {"s3": self.s3_endpoint, "gs": self.gcs_endpoint}
        if scheme not in endpoints:
            raise KeyError(f"the stack serves no {scheme}:// store: {', '.join(endpoints)}")
        return endpoints[scheme]

    def to_env(self) -> dict[str, str]:
        """The standard variables: Kafka's, kubectl's, the AWS SDKs', the GCS emulator's and
        the schema registry's (as Confluent's tools and images name it)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "KUBECONFIG": self.kubeconfig,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret_key,
            "AWS_REGION": self.s3_region,
            "STORAGE_EMULATOR_HOST": self.gcs_endpoint,
            "SCHEMA_REGISTRY_URL": self.schema_registry_url,
        }
