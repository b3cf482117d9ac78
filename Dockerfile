# syntax=docker/dockerfile:1
# One image for every subcommand: produce, sink file|s3|gcs|iceberg, status, replay, inspect,
# config, iceberg maintain.
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
# The dependencies' wheels first, in a layer of their own, at the versions CI tested
# (constraints.txt): read from pyproject.toml, so the layer is built again only when the
# dependencies change, not with every change to kafkube's code.
COPY pyproject.toml constraints.txt ./
RUN python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extras = [r for e in ("s3", "gcs", "parquet", "iceberg", "msk") for r in p["optional-dependencies"][e]]; \
print("\n".join(r for r in p["dependencies"] + extras if not r.startswith("kafkube")))' \
      > /requirements.txt \
 && /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /deps --constraint constraints.txt \
      --requirement /requirements.txt \
 && mv /requirements.txt /deps/ && cp constraints.txt /deps/
# Then kafkube itself: the whole context (.dockerignore lets only the package in), one layer.
COPY . ./
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /app .

# The runtime's virtualenv, without pip or setuptools (no build tools in the image): the build
# stage's pip installs into it (pip --python), then what kafkube never loads is taken out, in
# the same step, so no layer keeps it: the kubernetes client's asyncio twin; pyarrow's Flight
# RPC (no other library of it links it), tests and C++ headers; pyiceberg's Hive client; AWS's
# models of services other than S3 and STS.
FROM ${PYTHON_IMAGE} AS runtime
COPY --from=build /deps/requirements.txt /deps/constraints.txt /usr/local/share/kafkube/
RUN --mount=type=bind,from=build,source=/deps,target=/deps \
    --mount=type=bind,from=build,source=/opt/build,target=/opt/build \
    python3 -m venv --without-pip /opt/kafkube \
 && /opt/build/bin/pip --python /opt/kafkube/bin/python install --no-cache-dir --no-index \
      --find-links /deps --requirement /usr/local/share/kafkube/requirements.txt \
 && site=$(echo /opt/kafkube/lib/python3*/site-packages) \
 && rm -rf "$site"/kubernetes/aio "$site"/pyarrow/tests "$site"/pyarrow/include \
      "$site"/pyarrow/src "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/_flight*.so \
      "$site"/hive_metastore \
 && find "$site"/botocore/data -mindepth 1 -maxdepth 1 -type d \
      ! -name s3 ! -name sts ! -name sso ! -name sso-oidc -exec rm -rf {} + \
 && find "$site" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \) -delete

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 kafkube \
 && useradd --system --uid 10001 --gid kafkube --no-create-home --shell /usr/sbin/nologin kafkube
COPY --from=runtime /usr/local/share/kafkube /usr/local/share/kafkube
COPY --from=runtime /opt/kafkube /opt/kafkube
RUN --mount=type=bind,from=build,source=/app,target=/app \
    --mount=type=bind,from=build,source=/opt/build,target=/opt/build \
    /opt/build/bin/pip --python /opt/kafkube/bin/python install --no-cache-dir --no-index \
      --no-deps /app/kafkube-*.whl
ENV PATH=/opt/kafkube/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KAFKUBE_OBSERVABILITY__LISTEN=0.0.0.0:9464 \
    KAFKUBE_OBSERVABILITY__LOG_FORMAT=json
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["kafkube"]
CMD ["--help"]
