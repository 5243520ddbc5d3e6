# idporten-bff container image. Node 24 LTS is the production runtime.
#
#   docker build -t idporten-bff .
#   docker run --rm -p 3000:3000 -v "$PWD/my-config:/config:ro" \
#     -e BFF_SESSION_KEY -e IDPORTEN_CLIENT_ID -e IDPORTEN_JWK idporten-bff
#
# The configuration is read from BFF_CONFIG (default /config/gateway.yaml, mount it read-only);
# secrets come in as environment variables referenced from it as ${NAME}. Inside a container the
# file must set `server.host: 0.0.0.0`, or the gateway listens on the container's loopback only.
# deploy/ has a docker-compose.yml (gateway + Redis) and Kubernetes manifests built on this image.

# --- build: compile TypeScript with the dev dependencies ---------------------------------------
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: compiled code and production dependencies (the demo lives outside src/) ---------
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    BFF_CONFIG=/config/gateway.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The browser helper, served at /auth/client.js (read from dist/http/routes/../../../client/bff.js).
COPY client ./client
# The config loader reads the schema at run time from dist/config/../../config/schema.json.
COPY config/schema.json ./config/schema.json
COPY deploy/docker/healthcheck.mjs ./healthcheck.mjs
# The image's `node` user, by number, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
# Nothing under /app is writable by it: the root file system can be mounted read-only.
USER 1000:1000
# server.port (3000 unless the configuration says otherwise) and server.metricsPort when set.
EXPOSE 3000
# slim images carry no curl; Node's own fetch checks liveness on the port the configuration in
# BFF_CONFIG names (BFF_HEALTH_URL overrides it, e.g. when the file comes in with --config).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/healthcheck.mjs"]
# node runs as PID 1 and handles SIGTERM itself: stop accepting, finish in-flight requests, exit 0.
CMD ["node", "dist/main.js"]
