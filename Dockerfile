# syntax=docker/dockerfile:1
#
# because: the CPU image is the default target, the CUDA image is `--target gpu`.
#
#   docker build -t because .                  # CPU, node:22-bookworm-slim
#   docker build -t because:gpu --target gpu . # CUDA 12 + cuDNN 9 (needs network for the CUDA EP)
#   docker run --init -p 8080:8080 because
#   docker run --init --gpus all -p 8080:8080 because:gpu
#
# Both run the TypeScript sources with tsx exactly as `npm start` does (tsx is a runtime
# dependency), as `node --import tsx src/main.ts`: the same process the tsx CLI would spawn,
# without a wrapper between the container's stop signal and the service's graceful shutdown.
# `--init` gives PID 1 a reaper; the service handles SIGTERM itself: it drains for up to
# DRAIN_TIMEOUT_MS (10 s by default) and exits 0, so stop it with `docker stop -t 15` (docker's
# default grace is 10 s) or give Kubernetes a terminationGracePeriodSeconds above the drain. Configuration is the
# environment (HOST, PORT, DEVICE, MODELS, MAX_QUEUE, ...; see the README).
# The stage order matters: the last stage (cpu) is what a plain `docker build` produces.

ARG NODE_IMAGE=node:22-bookworm-slim
# CUDA 12 with cuDNN 9, what onnxruntime-node's CUDA execution provider links against.
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

# ---- production dependencies for the CPU image ----------------------------------------------
# onnxruntime-node's CPU build ships inside the npm package; skip its CUDA download.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- production dependencies for the GPU image ----------------------------------------------
# ONNXRUNTIME_NODE_INSTALL=cuda12 wins over .npmrc's skip: the install script fetches
# libonnxruntime_providers_{shared,cuda}.so (from NuGet) next to the native binding.
FROM ${NODE_IMAGE} AS deps-gpu
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_shared.so

# ---- GPU image: docker build --target gpu ----------------------------------------------------
FROM ${CUDA_IMAGE} AS gpu
# Node 22 from the official image (its binaries need only glibc 2.28; Ubuntu 22.04 has 2.35).
COPY --from=deps-gpu /usr/local/bin/node /usr/local/bin/node
RUN groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --no-create-home --shell /usr/sbin/nologin node
WORKDIR /app
COPY --from=deps-gpu /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY models ./models
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 DEVICE=cuda
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "--import", "tsx", "src/main.ts"]

# ---- CPU image (default) ---------------------------------------------------------------------
FROM ${NODE_IMAGE} AS cpu
WORKDIR /app
# Copied as root and left read-only to the service's user.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY models ./models
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 DEVICE=cpu
# The official image's unprivileged user (uid 1000).
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "--import", "tsx", "src/main.ts"]
