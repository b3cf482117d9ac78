# syntax=docker/dockerfile:1
# One image for every subcommand: produce, sink file|s3|gcs|iceberg, status, replay, inspect,
# config, iceberg maintain; and a slim one without Arrow (sinks file|s3|gcs in Avro or JSON
# Lines: no Parquet, no Iceberg, no MSK IAM login).
#   docker build -t kafkube .
#   docker build --build-arg EXTRAS="s3 gcs" -t kafkube:slim .
#   docker run --rm kafkube config check /etc/kafkube/config/config.yaml
# The base is pinned to an exact Python release; pin its digest too where your registry
# mirror allows (python@sha256:...), and rebuild for security updates on purpose.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# Any Debian-like base with python3 and its venv module works (the tests build on one made
# from Debian's packages): kafkube lives in its own virtualenv, /opt/kafkube.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python3 -m venv /opt/build
# The dependencies' wheels first, every image's, in a layer of their own, at the versions CI
# tested (constraints.txt): read from pyproject.toml, so the layer is built again only when
# the dependencies change, not with every change to kafkube's code.
COPY pyproject.toml constraints.txt ./
RUN python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extras = [r for e in ("s3", "gcs", "parquet", "iceberg", "msk") for r in p["optional-dependencies"][e]]; \
print("\n".join(r for r in p["dependencies"] + extras if not r.startswith("kafkube")))' \
      > /requirements.txt \
 && /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /deps --constraint constraints.txt \
      --requirement /requirements.txt
# A C compiler for the compiled scan and one pass (consumers/_scan.pyx, producer/_convert.pyx),
# in this stage only: the runtime gets the built modules and no compiler. Python's headers come
# with python3-dev where the base lacks them (Debian's python3; the python images have them).
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends gcc libc6-dev $(python3 -c 'import os, sysconfig; \
print("" if os.path.exists(sysconfig.get_paths()["include"] + "/Python.h") else "python3-dev")') \
 && rm -rf /var/lib/apt/lists/*
# Then kafkube itself: the whole context (.dockerignore lets only the package in), one layer.
COPY . ./
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /app .

# The runtime's virtualenv, with the extras of this image: every sink and format by default;
# `--build-arg EXTRAS="s3 gcs"` is the slim image (the file, S3 and GCS sinks in Avro and
# JSON Lines, no Arrow). It has no pip or setuptools (no build tools in the image): the build
# stage's pip installs into it (pip --python). In the same step, so that no layer keeps it,
# what kafkube never loads is taken out: the kubernetes client's asyncio twin and the aiohttp
# it alone needs; pyarrow's Flight RPC (no other library of it links it), tests, C++ headers
# and the copies of its Python bridge under each of its names (links instead); zstandard's
# second (CFFI) backend; pyiceberg's Hive client; AWS's models of services other than S3 and
# STS. The libraries are kept as byte code alone, compiled here, beside where their source
# was (a traceback through them shows no source line; kafkube's own code keeps its source).
FROM ${PYTHON_IMAGE} AS runtime
ARG EXTRAS="s3 gcs parquet iceberg msk"
# The dependency set is copied in, not read from the mounts below: a bind mount's content is
# no part of the build cache's key (buildah reused this layer, and its old dependencies, after
# one was added), a copied file's is.
COPY pyproject.toml constraints.txt /usr/local/share/kafkube/
RUN --mount=type=bind,from=build,source=/deps,target=/deps \
    --mount=type=bind,from=build,source=/opt/build,target=/opt/build \
    cd /usr/local/share/kafkube \
 && python3 -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extras = [r for e in sys.argv[1:] for r in p["optional-dependencies"][e]]; \
print("\n".join(r for r in p["dependencies"] + extras if not r.startswith("kafkube")))' $EXTRAS \
      > requirements.txt \
 && python3 -m venv --without-pip /opt/kafkube \
 && /opt/build/bin/pip --python /opt/kafkube/bin/python install --no-cache-dir --no-index \
      --find-links /deps --constraint constraints.txt --requirement requirements.txt \
 && site=$(echo /opt/kafkube/lib/python3*/site-packages) \
 && cd "$site" \
 && rm -rf kubernetes/aio aiohttp aiohttp_retry aiohappyeyeballs aiosignal frozenlist \
      multidict propcache yarl pyarrow/tests pyarrow/include pyarrow/src \
      pyarrow/libarrow_flight.so* pyarrow/_flight*.so pyarrow/libarrow_python_flight.so* \
      zstandard/_cffi.*.so hive_metastore \
 && for lib in pyarrow/libarrow_python*.so.*.*; do \
      [ -e "$lib" ] || continue; base=${lib%.so.*}.so; name=$(basename "$lib"); \
      ln -sf "$name" "$base"; ln -sf "$name" "${lib%.*.*}"; done \
 && if [ -d botocore ]; then find botocore/data -mindepth 1 -maxdepth 1 -type d \
      ! -name s3 ! -name sts ! -name sso ! -name sso-oidc -exec rm -rf {} +; fi \
 && find . \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyi' \) -delete \
 && find . -name __pycache__ -prune -exec rm -rf {} + \
 && /opt/kafkube/bin/python -m compileall -q -b -j 0 . \
 && find . -name '*.py' -delete

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 kafkube \
 && useradd --system --uid 10001 --gid kafkube --no-create-home --shell /usr/sbin/nologin kafkube
COPY --from=runtime /usr/local/share/kafkube /usr/local/share/kafkube
COPY --from=runtime /opt/kafkube /opt/kafkube
# kafkube's wheel is copied (it is small), not mounted: buildah mounts a stage that is all in
# its cache from one of its earlier layers, where /app is not yet.
COPY --from=build /app/ /usr/local/share/kafkube/
RUN --mount=type=bind,from=build,source=/opt/build,target=/opt/build \
    /opt/build/bin/pip --python /opt/kafkube/bin/python install --no-cache-dir --no-index \
      --no-deps /usr/local/share/kafkube/kafkube-*.whl
ENV PATH=/opt/kafkube/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KAFKUBE_OBSERVABILITY__LISTEN=0.0.0.0:9464 \
    KAFKUBE_OBSERVABILITY__LOG_FORMAT=json
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["kafkube"]
CMD ["--help"]
