# paramedic: one image, `paramedic serve` as a non-root user. Build: docker build -t paramedic .
# Several replicas share one PostgreSQL (PARAMEDIC_DATABASE=postgresql+psycopg://…); see docs/deployment.md.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/paramedic \
 && /opt/paramedic/bin/pip install --upgrade pip \
 && /opt/paramedic/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/paramedic/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib
RUN groupadd --system --gid 10001 paramedic \
 && useradd --system --uid 10001 --gid paramedic --home-dir /var/lib/paramedic --create-home paramedic
COPY --from=build /opt/paramedic /opt/paramedic
WORKDIR /var/lib/paramedic
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["paramedic"]
CMD ["serve", "--config", "/etc/paramedic/paramedic.yaml"]
