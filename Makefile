# Talkative Photo — `make help` lists the targets.
.PHONY: help install run test lint bench schema

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

install: ## create .venv and install the app and test tools
	@scripts/install.sh

run: install ## run the service with embedded defaults on http://127.0.0.1:8000
	.venv/bin/talkative serve

test: install ## run the test suite (needs PostgreSQL, Redis, RabbitMQ on this machine)
	@scripts/services.sh
	.venv/bin/pytest -q

lint: install ## ruff and mypy
	.venv/bin/ruff check .
	.venv/bin/mypy

schema: install ## re-export schema.graphql from the code
	.venv/bin/talkative export-schema > schema.graphql

bench: install ## run every benchmark
	@for b in bench/bench_*.py; do echo "== $$b"; .venv/bin/python $$b; done
