# Multi-stage: build the wheel with compilers, run it in a slim image as a non-root user.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin fastlb
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER fastlb
# Ports below 1024 (80, 443) need CAP_NET_BIND_SERVICE: `docker run --cap-add NET_BIND_SERVICE ...`,
# or serve on high ports with --http-port/--https-port.
EXPOSE 9090
# `fastlb run ...`, or marathon-lb's image form: `sse [flags]`, `poll [flags]` ($POLL_INTERVAL, 60 s).
ENTRYPOINT ["fastlb"]
CMD ["run"]
