# Sunnylive: the two commands a newcomer needs are `make dev` and `make test` (README.md).
# Every target installs what is missing first (scripts/setup is idempotent and takes ~1 s once all is there).

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(CURDIR)/node_modules/.bin:$(PATH)
# Keep wrangler and miniflare from phoning home (no telemetry, no request.cf fetch, no update banner).
export WRANGLER_SEND_METRICS := false
export WRANGLER_SEND_ERROR_REPORTS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false
export WRANGLER_HIDE_BANNER := true

.PHONY: dev test setup build lint unit docs-check e2e bench size deploy deploy-dry-run screenshots clean

## make dev: build everything and run the whole stack locally (Ctrl-C stops it all); Rust edits are rebuilt and
## swapped in while it runs (scripts/dev).
dev: setup
	@cargo build -q --release -p midtrans-sandbox -p sunnylive-origin-uploader
	@scripts/dev

## make test: formatting and lint gates, host unit tests, then the end-to-end suite against the real stack.
test: setup lint unit docs-check e2e

setup:
	@scripts/setup

build: setup
	@scripts/build-worker

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --lib -p sunnylive-functions -p durable-objects -p sunnylive-core -p sunnylive-edge -- -D warnings
	cargo deny --offline check licenses bans

unit:
	cargo test --workspace --exclude sunnylive-e2e

## make docs-check: every relative link and image in README.md, docs/ and the folders' READMEs resolves (no stack).
docs-check:
	cargo test -p sunnylive-e2e --test docs

## The suite against one stack, then the tooling checks (make dev, make size, wrangler deploy --dry-run of each Worker,
## scripts/deploy --dry-run) in a fresh copy of the checkout inside a 0700 directory (e2e/tests/tooling/).
e2e: build
	cargo build -q -p midtrans-sandbox -p sunnylive-origin-uploader
	cargo test -p sunnylive-e2e --test suite
	cargo test -p sunnylive-e2e --test tooling

## make bench: the upload size, then rerunnable benchmarks, each against a fresh local stack, each printing a table
## (medians, p99, ratios); fanout and hls also leave CSV in .run/bench/, drawn as SVG charts into docs/img/ by
## bench_charts (docs/BENCHMARKS.md). scripts/size leaves release (wasm-opt) builds in functions/build and
## durable-objects/build for them.
bench: setup
	cargo build -q --release -p midtrans-sandbox -p sunnylive-origin-uploader -p sunnylive-e2e --bins
	scripts/bench

## make screenshots: the docs' pictures (watch page with chat, Studio, the OBS overlay) from headless Chromium against
## the real stack, a streamer live with ffmpeg's test pattern, chat and a donation, into docs/img/ (commit them).
screenshots: build
	cargo build -q -p midtrans-sandbox -p sunnylive-origin-uploader
	cargo run -q -p sunnylive-e2e --bin screenshots

## make size: the upload size wrangler would deploy for each Worker (raw and gzip, each against its budget), from
## release builds with wasm-opt.
size: setup
	scripts/size

## make deploy: the guided, re-runnable deploy to your Cloudflare account (scripts/deploy); make deploy-dry-run
## prints every step and checks the configuration without touching an account.
deploy: setup
	scripts/deploy

deploy-dry-run: setup
	scripts/deploy --dry-run

clean:
	rm -rf target functions/build durable-objects/build .run web/vendor e2e/artifacts
