# audiosocket-soniox container image.
#   docker build -t audiosocket-soniox .
#   docker run --rm -e SONIOX_API_KEY=... -e WEBHOOK_URL=... -p 9092:9092 audiosocket-soniox
# Inside the container the server listens on 0.0.0.0; publish the port only to your Asterisk hosts.

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    AUDIOSOCKET_HOST=0.0.0.0 \
    AUDIOSOCKET_PORT=9092
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
EXPOSE 9092
# SIGTERM ends live calls properly (see README); give it time before SIGKILL: docker stop -t 30
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
