"""kafkube: Kubernetes events into Kafka as Avro, fanned out to durable sinks.

The installed package maps the repository's top-level folders under this one
namespace: ``cli/`` (this folder: the ``kafkube`` command, which wires the
rest together) is ``kafkube``, ``schemas/`` is ``kafkube.schemas``,
``producer/`` is ``kafkube.producer``, ``consumers/`` is ``kafkube.consumers``
and ``compose/`` (the local stack launcher) is ``kafkube.compose``.
"""

__version__ = "0.1.0"
