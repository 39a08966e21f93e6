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
# Liveness from /healthz, with Node's own fetch (the slim image has no curl), at HTTP_HOST (127.0.0.1
# for a wildcard) and HTTP_PORT, within 2.5 s. With HTTP_PORT=0 the endpoint is off and there is nothing
# to ask: the check passes (exit 0) rather than failing forever and marking a working server
# unhealthy. It does not probe the AudioSocket port instead: every probe would be a connection that
# never sends a UUID, logged and counted as a failed call. Docker still sees the process exit if it
# dies; keep HTTP on (and publish it only to your monitoring) for a real check. test/packaging.test.ts
# runs this script against a server, with a port and with HTTP_PORT=0.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const e=process.env,p=(e.HTTP_PORT??'9093').trim();if(p!==''&&Number(p)===0)process.exit(0);const h=(e.HTTP_HOST??'').trim(),a=h===''||h==='0.0.0.0'||h==='::'?'127.0.0.1':h.includes(':')?'['+h+']':h;fetch('http://'+a+':'+p+'/healthz',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM drains: live calls go on for DRAIN_TIMEOUT_MS (30 s), are then ended properly, events are
# flushed (FLUSH_TIMEOUT_MS); allow for it before SIGKILL: docker stop -t 90 / --stop-timeout 90. A
# second signal exits at once (143).
STOPSIGNAL SIGTERM
# package.json's "bin", the command the tests run (test/packaging.test.ts checks they stay the same).
# Node is PID 1 and handles SIGTERM/SIGINT itself; logs go to stderr, events (without a webhook) to stdout.
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
