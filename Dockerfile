# The ferry binary in a small Debian image. Build:  docker build -t ferry .
# Run:  docker run ferry server   (or api, worker; see docker-compose.yml)
# The base images are build arguments so that a mirror or a local image can stand in.
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Modules first: this layer stays cached while only our code changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ferry ./cmd/ferry

FROM ${BASE_IMAGE}
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates tzdata \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --uid 10001 --user-group --home-dir /var/lib/ferry ferry \
	&& install -d -o ferry -g ferry /var/lib/ferry
COPY --from=build /out/ferry /usr/local/bin/ferry
# Metrics (no key) on their own port: publish it only where Prometheus reaches.
ENV FERRY_LISTEN=0.0.0.0:8080 \
	FERRY_METRICS_LISTEN=0.0.0.0:9464 \
	FERRY_DATA_DIR=/var/lib/ferry
USER ferry
WORKDIR /var/lib/ferry
EXPOSE 8080 9464
ENTRYPOINT ["ferry"]
CMD ["server"]
