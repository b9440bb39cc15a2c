# syntax=docker/dockerfile:1
#
# Postroom: one image for every role; `ROLES` picks what a container runs (see docs/operations.md).
#
#   docker build -t postroom:local .
#   docker run --rm -p 8080:8080 -e AMQP_URL=... -e MYSQL_URL=... -e ROLES=api postroom:local
#
#   docker build --build-arg DOCUMENT_TOOLS=libreoffice -t postroom:converter .   # CONVERTER=local
#
# DOCUMENT_TOOLS (default none, the lean image): `previews` adds poppler-utils (pdftoppm: the first page
# of PDFs becomes their thumbnail; a few MB); `libreoffice` adds that and headless LibreOffice (Writer,
# Calc, Impress) with the metric-compatible fonts, for CONVERTER=local (about 316 MB more). With
# CONVERTER=local, run the container with an init (`docker run --init`, Compose `init: true`) so the
# helpers soffice leaves behind are reaped.
#
# Stages: `build` compiles TypeScript with every dependency; `deps` installs production dependencies
# only; `runtime` gets the compiled code and those dependencies, nothing else (no compiler, no npm cache,
# no sources, no tests). sharp ships its libvips in a registry package for glibc, so bookworm-slim needs
# no system libraries and nothing is compiled. The runtime stage adds Debian's mariadb-client
# (mariadb-dump and mariadb) for `npm run backup`, `npm run restore` and the scheduler's backup job.

# Node 24 LTS on Debian 12 (glibc). Why 24 and not 26: Node 20 is past its end of life; 24 gets
# security fixes until April 2028, longer than this image's releases live, and as a maintenance line it
# changes least; 26 (the active LTS) is one build argument away (--build-arg NODE_IMAGE=node:26-...)
# once the dependencies are checked on it. The code itself keeps running on Node 20.19+ (package.json
# engines), and the test suite runs on both (npm test, npm run test:node24).
# Pin a digest in production builds: --build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:...
# Machines that reach no image registry build a local stand-in (scripts/container-standins.sh).
ARG NODE_IMAGE=node:24-bookworm-slim

# ---------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
# Behind a TLS-inspecting proxy, npm needs the machine's CA bundle: mount it for the build, never copy
# it into a layer (ARGs are not kept in the runtime stage):
#   podman build -v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro \
#     --build-arg NODE_EXTRA_CA_CERTS=/run/host-ca.crt .
ARG NODE_EXTRA_CA_CERTS=
WORKDIR /app
# Manifests first, so the dependency layer is reused while only sources change. No package needs an
# install script (the same as npm 11's default here), so none runs.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json main.ts ./
COPY contracts ./contracts
COPY infra ./infra
COPY producers ./producers
COPY consumers ./consumers
COPY scripts ./scripts
RUN npm run build

# ---------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
ARG NODE_EXTRA_CA_CERTS=
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG DOCUMENT_TOOLS=none
# The same packages as scripts/install-converter.sh; none at all by default.
RUN case "$DOCUMENT_TOOLS" in \
      none) ;; \
      previews) apt-get update && apt-get install -y --no-install-recommends poppler-utils \
        && rm -rf /var/lib/apt/lists/* ;; \
      libreoffice) apt-get update && apt-get install -y --no-install-recommends \
          libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui \
          fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation2 fonts-dejavu-core poppler-utils \
        && rm -rf /var/lib/apt/lists/* ;; \
      *) echo "DOCUMENT_TOOLS must be none, previews or libreoffice (got $DOCUMENT_TOOLS)" >&2; exit 1 ;; \
    esac
LABEL org.opencontainers.image.title="postroom" \
      org.opencontainers.image.description="Event-driven mail room: IMAP and Telegram in; Drive, outbound APIs and Telegram notifications out" \
      org.opencontainers.image.licenses="MIT"
ENV NODE_ENV=production \
    ROLES=all \
    HTTP_PORT=8080 \
    STORAGE_DIR=/app/data/drive \
    BACKUP_DIR=/app/data/backups
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends mariadb-client \
 && rm -rf /var/lib/apt/lists/*
# Code and dependencies stay owned by root: the app user can read them, never change them.
# package.json is needed at run time: its "type": "module" makes dist/*.js ES modules.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The only directories the app writes besides /tmp: local filing (STORAGE_DIR) when there are no Google
# credentials, the drop folder (INBOX_DIR) and backups (BACKUP_DIR). A named volume mounted here starts
# with this ownership.
RUN mkdir -p /app/data/drive /app/data/inbox /app/data/backups && chown -R 1000:1000 /app/data
# `node` (uid 1000) from the base image; numeric, so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
# main.ts stops consuming on SIGTERM, finishes in-flight work within 25 s, flushes the outbox and exits 0.
STOPSIGNAL SIGTERM
# Liveness only (the process answers); /readyz tells whether RabbitMQ and MySQL answer. No curl in the
# image: Node's own fetch does it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||8080)+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/main.js"]
