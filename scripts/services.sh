#!/usr/bin/env bash
# Make sure the machine's PostgreSQL, Redis and RabbitMQ are running (the tests start S3, SMTP and OIDC).
set -uo pipefail
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 5432; then
  v=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
fi
if ! up 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
if ! up 5672; then
  rabbitmq-server -detached || true
  for _ in $(seq 1 60); do up 5672 && break; sleep 1; done
fi
for port in 5432 6379 5672; do
  for _ in $(seq 1 30); do up $port && break; sleep 1; done
  up $port || { echo "service on 127.0.0.1:$port is not running" >&2; exit 1; }
done
echo "postgres, redis, rabbitmq: up"
