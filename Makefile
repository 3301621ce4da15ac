# Log pipeline: every command a person runs twice.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed
STAGE ?= local

.DEFAULT_GOAL := help
.PHONY: help install lock test test-fast lint format clean

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv with exactly the locked versions (requirements.lock)

$(STAMP): requirements.lock pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
		echo "Python 3.11 is needed (the Lambda runtime the functions run on); found $$($(PY) -V 2>&1)." >&2; \
		echo "Install it (e.g. pyenv install 3.11) and run: make install PY=python3.11" >&2; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

lock: ## re-resolve requirements.txt + requirements-dev.in into requirements.lock
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" \
		requirements.txt requirements-dev.in -o requirements.lock

test: install browser ## lint, then run every test (unit, integration, end-to-end, browser)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy chalicelib/
	$(PYTHON) -m pytest -n 2 -q

# Debian's chromium and its driver, for the dashboard's browser test (Selenium drives them).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
.PHONY: browser test-browser screenshot
# Where apt-get cannot run, the browser test skips and says how to install (CI=true: fails).
browser: ## install headless Chromium and chromedriver with apt-get (once; make test runs it)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		$(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q -o DPkg::Lock::Timeout=600 chromium chromium-driver; } || { \
		echo "browser: could not install chromium and chromium-driver with apt-get;" \
			"the browser test will be skipped (install them yourself to run it)" >&2; \
		[ "$$CI" != true ]; }

test-browser: install browser ## only the dashboard's browser test
	$(PYTHON) -m pytest -q -p no:randomly tests/e2e/test_dashboard_browser.py

screenshot: install browser ## docs/dashboard*.png (several views), taken by the browser tests
	@# taken outside the project: a file written under it restarts `chalice local`
	shots=$$(mktemp -d) && DASHBOARD_SCREENSHOTS=$$shots \
		$(PYTHON) -m pytest -q -p no:randomly tests/e2e/test_dashboard_browser.py && \
		cp $$shots/dashboard*.png docs/ && rm -r $$shots

test-fast: install ## unit and integration tests only
	$(PYTHON) -m pytest -q -m "not e2e" tests/unit tests/integration

lint: install ## ruff, the import layering contracts (pyproject.toml), mypy on chalicelib/
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy chalicelib/

format: install ## ruff --fix and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove caches, generated data and raw measurements (results/raw/; results/*.json.gz stay)
	rm -rf .pytest_cache .ruff_cache .mypy_cache .hypothesis .bench-cache demo-data results/raw
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

# ---- operate: generate, upload, results, dead-letter queue -----------------------------
LINES ?= 1000
ERRORS ?= 0.05
MALFORMED ?= 0
GZIP ?=
SEED ?=
# Not a name `make demo` writes (logs-*.ndjson), so its sample files stay as they are.
OUT ?= demo-data/generated-$(LINES).ndjson$(if $(GZIP),.gz)
TIMEOUT ?= 60
# Stage local finds the running `make local` by its endpoint file; PORT=N names it instead.
LOCAL_ENDPOINT = $(if $(and $(PORT),$(filter local,$(STAGE))),--endpoint-url http://127.0.0.1:$(PORT))
.PHONY: generate upload results dlq redrive

generate: install ## write a log file: LINES=1000 ERRORS=0.05 MALFORMED=0 GZIP=1 SEED=7 OUT=path (default demo-data/generated-LINES.ndjson)
	$(PYTHON) -m logctl.generate --lines $(LINES) --error-rate $(ERRORS) \
		--malformed-rate $(MALFORMED) $(if $(GZIP),--gzip) $(if $(SEED),--seed $(SEED)) -o $(OUT)

upload: install ## upload FILE=path (FILE="a b": two files; FILE='"a b.ndjson"': a name with a space) to STAGE, wait up to TIMEOUT=60 s
	@$(if $(strip $(FILE)),:,{ echo "usage: make upload FILE=path [STAGE=local] [TIMEOUT=60]" >&2; exit 2; })
	$(PYTHON) -m logctl.upload --stage $(STAGE) $(LOCAL_ENDPOINT) --wait --timeout $(TIMEOUT) $(FILE)

results: install ## newest result records on STAGE (STATUS=, KEY=prefix filter; JOB=id: that record as JSON)
	$(PYTHON) -m logctl.results --stage $(STAGE) $(LOCAL_ENDPOINT) $(if $(JOB),--job $(JOB)) \
		$(if $(STATUS),--status $(STATUS)) $(if $(KEY),--key $(KEY))

dlq: install ## dead-letter queue depth and a peek at its messages on STAGE
	$(PYTHON) -m logctl.dlq show --stage $(STAGE) $(LOCAL_ENDPOINT)

redrive: install ## move dead-letter messages back to the jobs queue on STAGE
	$(PYTHON) -m logctl.dlq redrive --stage $(STAGE) $(LOCAL_ENDPOINT)

# ---- load test and performance report ------------------------------------------------
USERS ?= 8
STREAM_USERS ?= 0
DURATION ?= 60s
PACE ?= 0.375
SIZES ?= 1000
STEPS ?= 1,2,4,8,16,32
STEP_SECONDS ?= 20
LOCUST := $(BIN)/locust
RUNTIME_ARGS ?=
LOCUST_COMMON := --headless --sizes $(SIZES) --stop-timeout 30 --csv {output_stem}-locust
WITH_RUNTIME = $(PYTHON) -m loadtest.runtime --runtime-args "$(RUNTIME_ARGS)"
# Measurements write raw runs to results/raw/ (not in git) and nothing else; `make report`
# reads them beside the kept ones; only `make keep-results` changes results/.
RAW_NOTE = @echo "$@: the raw run is in results/raw/ (not in git); \`make report\` shows it, \`make keep-results\` keeps it in results/"
.PHONY: loadtest concurrency-sweep run-tests-local run-tests-aws report keep-results full-analysis

loadtest: install ## Locust vs a local runtime: USERS=8 each starting a file every PACE=0.375 s (0: back to back), DURATION=60s SIZES=1000 (the protocol the report's headline needs); STREAM_USERS=2 adds users streaming events
	$(WITH_RUNTIME) --kind load -- $(LOCUST) --pace $(PACE) $(LOCUST_COMMON) \
		$(if $(filter-out 0,$(STREAM_USERS)),-f loadtest/mixed.py --stream-users $(STREAM_USERS),-f loadtest/upload.py) \
		-u $(shell expr $(USERS) + $(STREAM_USERS)) -r $(shell expr $(USERS) + $(STREAM_USERS)) \
		-t $(DURATION)
	$(RAW_NOTE)

concurrency-sweep: install ## throughput vs users: STEPS=1,2,4,8,16,32 STEP_SECONDS=20 SIZES=1000
	$(WITH_RUNTIME) --kind sweep -- $(LOCUST) -f loadtest/sweep.py \
		$(LOCUST_COMMON) --steps $(STEPS) --step-seconds $(STEP_SECONDS)
	$(RAW_NOTE)

run-tests-local: install ## the seed's protocol (2 warm-up, 10 x 100/500/1000 lines) on a local runtime
	$(WITH_RUNTIME) --kind protocol -- $(PYTHON) -m loadtest.protocol --stage local
	$(RAW_NOTE)

run-tests-aws: install ## the same protocol against the deployed `aws` stage (needs credentials)
	$(PYTHON) -m loadtest.protocol --stage aws
	$(RAW_NOTE)

report: install ## docs/report.md, docs/charts/*.png and README's figures from results/ and results/raw/ (headline: runs following the protocol)
	$(PYTHON) -m analysis --results results --raw results/raw --docs docs --readme README.md

keep-results: install ## keep the raw runs the report reads as compact files in results/ (removes kept runs it no longer reads, and says which)
	$(PYTHON) -m analysis.compact

full-analysis: install ## run-tests-local, loadtest, concurrency-sweep, AWS if available, then report
	-$(MAKE) run-tests-local
	-$(MAKE) loadtest
	-$(MAKE) concurrency-sweep
	-$(PYTHON) -m loadtest.protocol --stage aws --optional
	$(MAKE) report

# ---- soak: faults, hostile files, reconciliation ---------------------------------------
SOAK_FILES ?= 1000
SOAK_SEED ?= 1
SOAK_ARGS ?=
.PHONY: soak soak-smoke

soak: install ## mixed + hostile workload through a local runtime with faults, then reconcile: SOAK_FILES=1000 SOAK_SEED=1
	$(PYTHON) -m soak --files $(SOAK_FILES) --seed $(SOAK_SEED) $(SOAK_ARGS)

soak-smoke: install ## the soak's smoke test (small files, few uploads), as `make test` runs it
	$(PYTHON) -m pytest -q -p no:randomly tests/e2e/test_soak_smoke.py

# ---- worker benchmark -----------------------------------------------------------------
.PHONY: bench bench-decode profile bench-telemetry
bench: install ## the worker vs a naive loop on a 2M-line file: M lines/s (CPU), gunzip, stages, RSS
	$(PYTHON) bench/bench_worker.py

bench-decode: install ## ways to cut and decode a block, side by side (after make bench)
	$(PYTHON) bench/bench_decode.py $(FILE)

profile: install ## py-spy: where the worker's time goes, line by line (FILE=bench file by default)
	$(PYTHON) bench/profile_worker.py $(FILE)

bench-telemetry: install ## what Powertools (Logger, EMF metrics) adds to cold start and per file
	$(PYTHON) bench/bench_telemetry.py

# ---- local runtime, deployment and teardown --------------------------------------------
PORT ?=
API_PORT ?=
ALERT_EMAIL ?=
RAW_LOG_DAYS ?=
INGEST_SHARDS ?=
YES ?=
PURGE ?=
SAFETY_ARGS = $(if $(ALERT_EMAIL),--alert-email $(ALERT_EMAIL)) \
	$(if $(RAW_LOG_DAYS),--raw-log-days $(RAW_LOG_DAYS)) \
	$(if $(INGEST_SHARDS),--ingest-shards $(INGEST_SHARDS))
DESTROY_ARGS = $(if $(YES),--yes) $(if $(PURGE),--purge)
.PHONY: local clean-state test-restart dashboard demo fault-drill faults policy deploy-local deploy-aws destroy-local \
	destroy-aws clean-all bench-e2e bench-api bench-speedups bench-signatures bench-rollup-cost bench-kinesis bench-query bench-restore \
	bench-ingest bench-ingest-batches bench-e2e-compare bench-lag

local: install ## the pipeline on 127.0.0.1:4566 (PORT=...; upload/results follow it), API + dashboard on API_PORT=8000, state kept in .localruntime-state (FRESH=1: start empty); RUNTIME_ARGS="--fault s3_get_500=0.5" injects faults (make faults)
	$(PYTHON) -m localruntime $(if $(PORT),--port $(PORT)) --api-port $(or $(API_PORT),8000) $(RUNTIME_ARGS) \
		--endpoint-file --state $(if $(FRESH),--fresh)

test-restart: install ## Ctrl-C a runtime mid-run, start it again on its state, check every job: FILES=100
	RESTART_FILES=$(or $(FILES),100) $(PYTHON) -m pytest -q -p no:randomly tests/e2e/test_restart.py

clean-state: install ## forget what `make local` kept (.localruntime-state); refused while it runs
	$(PYTHON) -m localruntime.statefolder clean

dashboard: install ## print the dashboard URL of the running `make local`; STAGE=aws: serve it on API_PORT=8000, signing requests
	$(PYTHON) -m logctl.dashboard --stage $(STAGE) $(if $(API_PORT),--port $(API_PORT))

demo: install ## start the runtime, process 5 sample files, print the results, stop it
	$(PYTHON) -m localruntime.demo

fault-drill: install ## files fail into the DLQ under a fault, fault cleared, redrive, completed (RUNNING=1: on `make local`)
	$(PYTHON) -m localruntime.drill $(if $(RUNNING),--running)

faults: install ## a running local runtime's injected faults; SET="kind=rate ...": set them, CLEAR=1: clear
	$(PYTHON) -m logctl.faults $(if $(SET),set $(SET),$(if $(CLEAR),clear,show))

policy: install ## rewrite .chalice/policy-<stage>.json from the stage names in config.json
	$(PYTHON) -m logctl.policy

deploy-local: install ## provision, chalice-local deploy, post-deploy: into a running `make local`
	$(PYTHON) -m logctl.deploy --stage local $(if $(PORT),--port $(PORT)) $(SAFETY_ARGS)

deploy-aws: install ## policy, provision, chalice deploy --stage aws, post-deploy (ALERT_EMAIL=, RAW_LOG_DAYS=30, INGEST_SHARDS=1)
	$(PYTHON) -m logctl.deploy --stage aws $(SAFETY_ARGS)

destroy-local: install ## delete stage local from a running `make local` (YES=1 no question, PURGE=1 uploads too)
	$(PYTHON) -m logctl.destroy --stage local $(if $(PORT),--port $(PORT)) $(DESTROY_ARGS)

destroy-aws: install ## chalice delete + everything provisioning made in AWS (YES=1, PURGE=1)
	$(PYTHON) -m logctl.destroy --stage aws $(DESTROY_ARGS)

clean-all: clean ## clean, plus .venv and the local stage's Chalice state (AWS state is kept)
	rm -rf $(VENV) .chalice/deployments .chalice/deployed/local.json

bench-api: install ## results API latency through chalice local, 2,000 jobs in the table (JOBS=2000)
	$(PYTHON) bench/bench_api.py --jobs $(or $(JOBS),2000)

bench-e2e: install ## end-to-end latency, 100 x 1,000-line files on a fresh local runtime
	$(PYTHON) bench/bench_e2e.py

bench-e2e-compare: install ## bench-e2e on this tree and on BASE=eb511d9^1 (a temporary worktree) in turns, ROUNDS=3 x FILES=100: P50 difference against the ±5 ms noise
	$(PYTHON) bench/bench_e2e_compare.py --base '$(or $(BASE),eb511d9^1)' \
		--rounds $(or $(ROUNDS),3) --files $(or $(FILES),100)

bench-lag: install ## final record to counted by GET /stats (API port), FILES=50 one at a time: lag P50/P95/max, target P50 <= 1.5 s
	$(PYTHON) bench/bench_lag.py --files $(or $(FILES),50)

bench-ingest: install ## streamed events through the local runtime: EVENTS=200000 SHARDS=2; events/s and event-to-result P50/P99
	$(PYTHON) bench/bench_ingest.py --events $(or $(EVENTS),200000) --shards $(or $(SHARDS),2)

bench-ingest-batches: install ## what the ingest handler's batch size costs per event (in process, moto)
	$(PYTHON) bench/bench_ingest.py --batch-sizes $(or $(BATCH_SIZES),100,1000,2500,5000,10000)

bench-rollup-cost: install ## write and read units the rollups cost per file, quiet and busy (in process, moto): FILES_PER_HOUR=10
	$(PYTHON) bench/bench_rollup_cost.py --files-per-hour $(or $(FILES_PER_HOUR),10)

bench-signatures: install ## CPU per request of the endpoint's presigned-URL check, and of checking header signatures
	$(PYTHON) bench/bench_signatures.py

bench-kinesis: install ## moto's Kinesis PutRecords/GetRecords at 10k and 100k records in a shard, with and without the kinesis-shard speed-up
	$(PYTHON) bench/bench_kinesis.py

bench-query: install ## moto's DynamoDB Query on tables of 1k and 8k items, with and without the query-partition speed-up
	$(PYTHON) bench/bench_query.py

bench-restore: install ## a start on a saved state of RECORDS=10000 records and MEGABYTES=500 of objects: ready after how long
	$(PYTHON) bench/bench_restore.py --records $(or $(RECORDS),10000) --megabytes $(or $(MEGABYTES),500)

bench-speedups: install ## what each moto speed-up gains: endpoint CPU per file and e2e P50 without it (ROUNDS=3)
	$(PYTHON) bench/bench_speedups.py --rounds $(or $(ROUNDS),3)
