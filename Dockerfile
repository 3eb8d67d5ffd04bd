# One image for every gslb role: `gslb serve`, `gslb proxy`, and the demo backends.
#   docker build -t gslb .
#   docker run --rm gslb check --config /app/zones
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# The package first, so that config edits do not reinstall it.
COPY pyproject.toml README.md ./
COPY gslb ./gslb
RUN pip install . && rm -rf build

# The sample config, the demo GeoIP database, the compose topology's config and the schemas.
COPY zones ./zones
COPY geodata ./geodata
COPY deploy/compose/zones ./deploy/compose/zones
COPY schemas ./schemas

# Run unprivileged; admin state lives in /var/lib/gslb (mount a volume there).
RUN useradd --system --no-create-home --home-dir /var/lib/gslb gslb \
    && mkdir -p /var/lib/gslb && chown gslb:gslb /var/lib/gslb
USER gslb

# DNS, admin API, a proxy's traffic and admin ports.
EXPOSE 53/udp 53/tcp 8053 8080 8081
ENTRYPOINT ["gslb"]
CMD ["serve", "--config", "/app/zones"]
