# idporten-bff container image. Node 24 LTS is the production runtime.
#
#   docker build -t idporten-bff .
#   docker run --rm -p 3000:3000 -v "$PWD/my-config:/config:ro" \
#     -e BFF_SESSION_KEY -e IDPORTEN_CLIENT_ID -e IDPORTEN_JWK idporten-bff
#
# The configuration is read from BFF_CONFIG (default /config/gateway.yaml, mount it read-only);
# secrets come in as environment variables referenced from it as ${NAME}. Inside a container the
# file must set `server.host: 0.0.0.0`, or the gateway listens on the container's loopback only.

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
# The config loader reads the schema at run time from dist/config/../../config/schema.json.
COPY config/schema.json ./config/schema.json
USER node
EXPOSE 3000
# slim images carry no curl; Node's own fetch checks liveness.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:3000/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
# node runs as PID 1 and handles SIGTERM itself: stop accepting, finish in-flight requests, exit 0.
CMD ["node", "dist/main.js"]
