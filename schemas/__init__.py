"""The contract between the producer and the sinks.

Schemas, codec, topic and header names live here. This package imports nothing
else of kafkube and no client library, so both sides can depend on it.
"""
