# syntax=docker/dockerfile:1
# One image for every subcommand: produce, sink file|s3|gcs, status, replay, inspect, config.
#   docker build -t kafkube .
#   docker run --rm kafkube config check /etc/kafkube/config/config.yaml
# The base is pinned to an exact Python release; pin its digest too where your registry
# mirror allows (python@sha256:...), and rebuild for security updates on purpose.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# Any Debian-like base with python3 and its venv module works (the tests build on one made
# from Debian's packages): kafkube lives in its own virtualenv, /opt/kafkube.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python3 -m venv /opt/build
COPY pyproject.toml constraints.txt README.md ./
COPY kafkube ./kafkube
COPY core ./core
COPY cli ./cli
COPY schemas ./schemas
COPY producer ./producer
COPY consumers ./consumers
COPY compose ./compose
# Wheels of kafkube and of every dependency, at the versions CI tested (constraints.txt).
RUN /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels --constraint constraints.txt \
      '.[s3,gcs,parquet,iceberg]'

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 kafkube \
 && useradd --system --uid 10001 --gid kafkube --no-create-home --shell /usr/sbin/nologin kafkube
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/kafkube \
 && /opt/kafkube/bin/pip install --no-cache-dir --no-index --find-links /wheels \
      'kafkube[s3,gcs,parquet,iceberg]' \
 && rm -rf /wheels
ENV PATH=/opt/kafkube/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KAFKUBE_OBSERVABILITY__LISTEN=0.0.0.0:9464 \
    KAFKUBE_OBSERVABILITY__LOG_FORMAT=json
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["kafkube"]
CMD ["--help"]
