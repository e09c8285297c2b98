# Redis from Debian's redis-server, for tests/system/test_container.py on machines that reach no image
# registry (REDIS_IMAGE in compose.yaml; users get the official redis:7). It behaves as that
# image does: data in /data, run as the redis user, any interface of the container's network.
ARG BASE_IMAGE=chatbot-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/redis-entrypoint.sh
WORKDIR /data
VOLUME /data
USER redis
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/redis-entrypoint.sh"]
CMD ["redis-server"]
