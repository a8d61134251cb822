#!/usr/bin/env bash
# Make sure the Redis, PostgreSQL and RabbitMQ that the tests use are running on this machine, starting
# whichever is down with the same command the machine image uses. Idempotent.
set -euo pipefail

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
# tests/deploy validate deploy/compose.yaml with `docker-compose config -q` (no daemon needed).
# Install Debian's package once; without apt the test skips and says why.
if ! command -v docker-compose >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing docker-compose"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; } >/dev/null 2>&1; then
    echo "could not install docker-compose; its test will be skipped" >&2
  fi
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
# RabbitMQ for the amqp:// broker tests (tests/e2e/rabbitmq.py skips them where there is no server).
rabbitmq_up() { rabbitmq-diagnostics -q ping >/dev/null 2>&1; }
if command -v rabbitmq-server >/dev/null 2>&1 && ! rabbitmq_up; then
  echo "starting rabbitmq"
  rabbitmq-server -detached || true
  for _ in $(seq 1 60); do rabbitmq_up && break; sleep 1; done
fi
for _ in $(seq 1 30); do
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 -q; then
    exit 0
  fi
  sleep 1
done
echo "redis or postgresql did not come up" >&2
exit 1
