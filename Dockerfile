# raftlock server image.
#   docker build -t raftlock .
#   docker run -d -p 6379:6379 -v raftlock-data:/data raftlock
# Flags can be given as arguments (docker run raftlock --requirepass s3cret) or as RAFTLOCK_<FLAG>
# environment variables. The health check reads RAFTLOCK_PORT and RAFTLOCK_REQUIREPASS, so set the
# port and password through the environment rather than as arguments.

FROM node:20-slim AS build
WORKDIR /app
COPY . .
RUN npm ci && npm run build && npm prune --omit=dev

FROM node:20-slim
ENV NODE_ENV=production \
    RAFTLOCK_BIND=0.0.0.0 \
    RAFTLOCK_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The volume is created owned by the unprivileged user, so the server can write its data there.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
# RESP. (The cluster transport and REST API ports are added with those features.)
EXPOSE 6379
# A RESP PING over node:net (the image has no redis-cli); healthy on +PONG.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const net = require('node:net'); const pass = process.env.RAFTLOCK_REQUIREPASS; const bulk = (s) => '$' + Buffer.byteLength(s) + '\\r\\n' + s + '\\r\\n'; const socket = net.connect(Number(process.env.RAFTLOCK_PORT || 6379), '127.0.0.1'); let reply = ''; socket.setTimeout(4000, () => process.exit(1)); socket.on('error', () => process.exit(1)); socket.on('connect', () => socket.write((pass ? '*2\\r\\n' + bulk('AUTH') + bulk(pass) : '') + '*1\\r\\n' + bulk('PING'))); socket.on('data', (chunk) => { reply += chunk; if (reply.includes('+PONG\\r\\n')) process.exit(0); if (/(^|\\n)-/.test(reply)) process.exit(1); });"]
ENTRYPOINT ["node", "--min-semi-space-size=16", "--max-semi-space-size=16", "dist/src/server/main.js"]
