#!/bin/sh
# As the official redis image's entrypoint: arguments that are only options are redis-server's,
# and redis-server without a config file serves every interface of the container's network
# (protected mode off), which only the compose network reaches.
set -e
if [ "${1#-}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
    shift
    set -- redis-server --protected-mode no "$@"
fi
exec "$@"
