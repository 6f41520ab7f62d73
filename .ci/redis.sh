#!/bin/sh
# Make sure `redis-server` exists for the Redis-mode tests (tests/test_redis_*.py).
# The tests start their own server on a free loopback port, so no service is needed;
# with CI set they fail (rather than skip) when redis-server is missing.
# Usage, from .ci/run before pytest:  sh .ci/redis.sh
set -eu
if command -v redis-server >/dev/null 2>&1; then
    redis-server --version
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server
redis-server --version
