"""The core: what every package may use, and which imports none of them.

The error root (``errors``), the Kafka login check and its watch (``login``), the admin
probe (``admin``), the schema registry client (``registry``), /metrics and the health
probes (``serving``), a dependency away told once per change of state and waited out
(``outages``), and the one rule for secrets in outputs (``redaction``).
"""
