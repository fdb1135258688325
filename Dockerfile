# regsweep in a container:
#   docker build --build-arg NODE_IMAGE=node:22-alpine -t regsweep .
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock --volumes-from registry regsweep registry --yes
ARG NODE_IMAGE=node:22-alpine

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY src ./src
COPY scripts ./scripts
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
COPY package.json ./
COPY bin ./bin
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# The flags of bin/regsweep.js's first lines (a test holds the two alike).
ENTRYPOINT ["node", "--max-semi-space-size=2", "/app/bin/regsweep.js"]
