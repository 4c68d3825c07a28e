# One image for every LiveLedger process (ingest, api, streams, sink, the CLI); the command picks
# the process (see docker-compose.yml). Not used by the Docker-free dev stack.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml ./
COPY liveledger ./liveledger
COPY schemas ./schemas
COPY ingest ./ingest
COPY api ./api
COPY streams ./streams
COPY consumers ./consumers
COPY producers ./producers
COPY loadtests ./loadtests
COPY devstack ./devstack
RUN pip install .
RUN useradd --system --uid 10001 liveledger
USER liveledger
CMD ["liveledger", "--help"]
