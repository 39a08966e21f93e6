# audiosocket-soniox container image (README.md, "Docker").
#   docker build -t audiosocket-soniox .
#   docker run -d --name audiosocket-soniox --env-file /etc/audiosocket-soniox/env \
#     -p 127.0.0.1:9092:9092 -p 127.0.0.1:9093:9093 -v audiosocket-spool:/var/lib/audiosocket-soniox \
#     --stop-timeout 90 audiosocket-soniox
# Inside the container the server listens on 0.0.0.0 (AudioSocket 9092, HTTP 9093); publish the
# ports only to your Asterisk hosts and your monitoring.

# A Node.js LTS line (build with --build-arg NODE_IMAGE=... to change it).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Only what runs: the compiled code and the production dependencies (ws, pino, convict).
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    AUDIOSOCKET_HOST=0.0.0.0 \
    AUDIOSOCKET_PORT=9092 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=9093
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The webhook spool and dead-letter file (README, "Delivery guarantees"): on a volume, so events not yet
# delivered survive a restart or a new container.
ENV SPOOL_DIR=/var/lib/audiosocket-soniox
RUN mkdir -p /var/lib/audiosocket-soniox && chown node:node /var/lib/audiosocket-soniox
VOLUME /var/lib/audiosocket-soniox
USER node
EXPOSE 9092 9093
# Liveness from /healthz, with Node's own fetch (the slim image has no curl).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||9093)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM drains: live calls go on for DRAIN_TIMEOUT_MS (30 s), are then ended properly, events are
# flushed (FLUSH_TIMEOUT_MS); allow for it before SIGKILL: docker stop -t 90 / --stop-timeout 90.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
