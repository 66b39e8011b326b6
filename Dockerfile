# Multi-stage build: a static binary on a distroless, non-root base.
# The git handler's go-git engine is built in, so the image needs no git;
# to use the git CLI engine (LFS, partial clones), build FROM an image with git.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/initializer ./cmd/initializer

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/initializer /usr/local/bin/initializer
# Numeric, so that a pod's runAsNonRoot can be checked against it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/initializer"]
