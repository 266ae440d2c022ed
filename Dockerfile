# kafka-sql-sink: one container per topic set, configured by SINK_* environment variables (or
# env files mounted and given as `sink run --env-file ...`), secrets from /run/secrets.
#   docker build -t kafka-sql-sink .
#   docker run --env-file config/postgres-avro.env -p 8080:8080 kafka-sql-sink
# See deploy/README.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build: a virtualenv with the sink
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/sink
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sink ./sink
# The runtime dependencies and the otel extra (tracing, off unless OTEL_TRACES_EXPORTER is set):
# no [dev] extra, no tests, no benchmarks.
RUN /opt/sink/bin/pip install --upgrade pip \
 && /opt/sink/bin/pip install .'[otel]' \
 && /opt/sink/bin/sink --help >/dev/null

# ---------------------------------------------------------------- runtime: the virtualenv, a user, nothing else
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 sink \
 && useradd --system --uid 10001 --gid sink --home-dir /home/sink --create-home --shell /usr/sbin/nologin sink
COPY --from=build /opt/sink /opt/sink
ENV PATH=/opt/sink/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SINK_HTTP_PORT=8080
WORKDIR /home/sink
USER 10001:10001
EXPOSE 8080
# /livez answers 200 while the worker loop turns; SINK_HTTP_PORT set at run time is followed.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % (os.environ.get('SINK_HTTP_PORT') or '8080'), timeout=4)"]
ENTRYPOINT ["sink"]
CMD ["run"]
