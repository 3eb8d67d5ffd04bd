# One image for every gslb role: `gslb serve`, `gslb proxy`, and the demo backends.
#   docker build -t gslb .
#   docker run -d -p 53:5353/udp -p 53:5353/tcp -p 127.0.0.1:8053:8053 -e GSLB_API_TOKEN \
#       -v gslb-state:/var/lib/gslb gslb        # serves /etc/gslb (the sample zones)
#   docker run --rm gslb check --config /etc/gslb
# tests/test_image.py lays out what this file copies and runs its CMD and HEALTHCHECK.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# The package first, so that config edits do not reinstall it; every dependency at the
# exact version of deploy/constraints.txt (pyproject.toml has ranges, for developers).
COPY pyproject.toml README.md ./
COPY deploy/constraints.txt ./deploy/
COPY gslb ./gslb
# gcc only for the build of the UDP batch loop's C module (gslb/dns/_mmsg.c), then removed;
# without it the optional build is skipped and the loop's pure-Python twin runs.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev \
    && pip install --constraint deploy/constraints.txt . && pip check && rm -rf build \
    && python -c "import gslb.dns._mmsg" \
    && apt-get purge -y -qq gcc libc6-dev && apt-get autoremove -y -qq \
    && rm -rf /var/lib/apt/lists/*

# The sample config, the demo GeoIP database, the compose topology's config and the schemas.
COPY zones ./zones
COPY geodata ./geodata
COPY deploy/compose/zones ./deploy/compose/zones
COPY schemas ./schemas

# The config the default command serves: the sample zones with the container's settings
# (DNS on 0.0.0.0:5353, API on 0.0.0.0:8053, state in /var/lib/gslb). Mount yours over it.
COPY zones /etc/gslb
COPY deploy/container/gslb.yaml /etc/gslb/gslb.yaml

# Run unprivileged; admin state lives in /var/lib/gslb (mount a volume there), the only
# directory user gslb may write. DNS is on 5353 (no capability needed): publish 53:5353.
RUN useradd --system --no-create-home --home-dir /var/lib/gslb gslb \
    && mkdir -p /var/lib/gslb && chown gslb:gslb /var/lib/gslb
USER gslb

# DNS, admin API, a proxy's traffic and admin ports.
EXPOSE 5353/udp 5353/tcp 8053 8080 8081
# The admin API's /healthz (python: slim images have no curl). Another role, or an API moved
# off 8053: set GSLB_HEALTHCHECK_URL, or override the check (docker-compose.yml does).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "gslb.healthcheck"]
ENTRYPOINT ["gslb"]
CMD ["serve", "--config", "/etc/gslb"]
