"""kafkube: Kubernetes events into Kafka as Avro, fanned out to durable sinks.

The installed package maps the repository's top-level folders under this one
namespace: ``core/`` (this folder: the error root and the Kafka login check,
which every other package may use) is ``kafkube``, ``schemas/`` is
``kafkube.schemas``, ``producer/`` is ``kafkube.producer``, ``consumers/`` is
``kafkube.consumers``, ``compose/`` (the local stack launcher) is
``kafkube.compose`` and ``cli/`` (the ``kafkube`` command, which wires the rest
together) is ``kafkube.cli``.
"""

__version__ = "0.1.0"
