# aiecs-llm operations container: `aiecs-llm serve` answers /healthz, /metrics and /usage.
# Build: docker build -t aiecs-llm .   Run: docker compose up (keys from your environment).

# The wheel is built in a throw-away stage, so build tools never reach the final image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY aiecs_llm ./aiecs_llm
COPY cassettes ./cassettes
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
# LiteLLM's bundled price map (no download at start-up); the ledger on the /data volume.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    LLM_USAGE_DB=/data/llm-usage.db
COPY --from=build /dist /tmp/dist
RUN pip install --no-cache-dir "$(ls /tmp/dist/aiecs_llm-*.whl)[prometheus]" \
    && rm -rf /tmp/dist \
    && useradd --system --uid 10001 --home-dir /data --create-home aiecs
USER aiecs
WORKDIR /data
EXPOSE 8000
# The slim image has no curl; the standard library does the probe. /healthz sends nothing to
# any provider, so a frequent probe costs nothing.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# 0.0.0.0 inside the container only: publish the port to trusted networks (compose binds it
# to the host's loopback), since the endpoints have no authentication.
CMD ["aiecs-llm", "serve", "--host", "0.0.0.0", "--port", "8000"]
