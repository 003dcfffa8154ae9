# cotylua in a container: `docker build -t cotylua-echo .` then
# `docker run --rm -p 7000:7000 cotylua-echo` runs examples/echo.lua as
# PID 1 (replace it with your services file). CI runs these stages in a
# minimal Debian 12 root (.ci/container.sh), RUN, COPY, ENV and CMD as
# written here, one instruction per line.
FROM debian:12 AS build
RUN apt-get update && apt-get install -y --no-install-recommends make gcc libc6-dev pkg-config lua5.4 liblua5.4-dev libsystemd-dev
COPY . /src
RUN make -C /src && make -C /src install PREFIX=/usr/local

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends liblua5.4-0 lua-socket && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local /usr/local
COPY examples/echo.lua /app/services.lua
ENV ECHO_LISTEN=tcp://0.0.0.0:7000
EXPOSE 7000
CMD ["cotylua", "/app/services.lua"]
