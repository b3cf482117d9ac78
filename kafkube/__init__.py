"""kafkube: Kubernetes events into Kafka as Avro, fanned out to durable sinks.

This folder is the import tree as it is installed: the entry points (``launch``, the
console script's; ``__main__``) and one link per package to the top-level folder that holds
it (``core/`` is ``kafkube.core``, ``consumers/`` is ``kafkube.consumers``, and so on). The
README's layout section has the table.
"""

__version__ = "0.1.0"
