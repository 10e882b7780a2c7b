# syntax=docker/dockerfile:1
ARG GO_VERSION=1.22
ARG BASE=alpine:3.19

FROM golang:${GO_VERSION} AS build
ARG TARGETOS TARGETARCH
ENV CGO_ENABLED=0 \
    GOFLAGS=-trimpath
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /out/app ./cmd/app

FROM build AS test
RUN go test ./...

FROM ${BASE}
ARG VERSION=dev
LABEL org.opencontainers.image.version=$VERSION maintainer="someone <a@b.c>"
ENV APP_HOME=/opt/app
WORKDIR $APP_HOME
COPY --from=build --chown=1000:1000 /out/app ./bin/
USER 1000
EXPOSE 8080 9090/udp
VOLUME ["/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD wget -q -O- http://localhost:8080/health
ENTRYPOINT ["./bin/app"]
CMD ["serve", "--addr", ":8080"]
