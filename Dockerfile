# A static acestash binary on a distroless base, run as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/acestash ./cmd/acestash \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/acestash /usr/local/bin/acestash
COPY --from=build --chown=65532:65532 /out/data /var/lib/acestash
USER 65532:65532
ENV ACESTASH_DATA_DIR=/var/lib/acestash
EXPOSE 8080
# /readyz: the store answers and enough mirrors are up for the write quorum.
HEALTHCHECK --interval=10s --timeout=6s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/acestash", "probe", "http://127.0.0.1:8080/readyz"]
VOLUME /var/lib/acestash
ENTRYPOINT ["/usr/local/bin/acestash"]
CMD ["serve"]
