# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 5000
FAKE_SHOP_PORT ?= 5001
AMOUNT ?= 42.50
CHAOS_ARGS ?=
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/test
FLASK = $(VENV)/bin/flask --app plugin
DEV_ENV = set -a && . instance/dev.env && SHOPIFY_API_BASE_URL=http://127.0.0.1:$(FAKE_SHOP_PORT) && LOYALTY_DEMO=1 && set +a

.PHONY: run test test-postgres test-sqlite fuzz lint ruff imports theme-check npm-locks admin widget simulate balance redeem bench bench-widget chaos clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

instance/dev.env: | $(VENV)/.installed
	scripts/dev-env.sh $(VENV)/bin/python

# The merchant's admin (docs/decisions/0018): npm packages from the lockfile, bundled by esbuild; rebuilt when a
# source changes. Needs Node 20+ and, for `npm ci` only, the npm registry.
ADMIN_UI = plugin/web/admin_ui
ADMIN_SOURCES = $(shell find $(ADMIN_UI)/src -type f) $(ADMIN_UI)/build.mjs $(ADMIN_UI)/package-lock.json

$(ADMIN_UI)/node_modules/.package-lock.json: $(ADMIN_UI)/package-lock.json
	cd $(ADMIN_UI) && npm ci --ignore-scripts --no-audit --no-fund

plugin/static/admin-ui/stamp.json: $(ADMIN_UI)/node_modules/.package-lock.json $(ADMIN_SOURCES)
	cd $(ADMIN_UI) && node build.mjs

## admin: install the admin's npm packages (npm ci) and bundle it into plugin/static/admin-ui/
admin: plugin/static/admin-ui/stamp.json

## widget: minify the storefront widget's sources (storefront_widget/widget_src/) into the theme app extension's
## assets with the admin's esbuild; commit both (Shopify deploys the extension folder as it is)
widget: $(ADMIN_UI)/node_modules/.package-lock.json
	$(PYTHON) -m storefront_widget.widget_build

## run: serve the app on SQLite with inline jobs and a demo shop
run: $(VENV)/.installed instance/dev.env admin widget
	$(DEV_ENV) && $(FLASK) loyalty db-upgrade && $(FLASK) loyalty demo
	@echo
	@echo "  The app listens on http://127.0.0.1:$(PORT) (jobs run inline; data in instance/loyalty.db);"
	@echo "  the demo shop's Admin API is a local fake shop on :$(FAKE_SHOP_PORT)."
	@echo "  Open the demo storefront with the widget: http://127.0.0.1:$(PORT)/demo/storefront"
	@echo "  In another terminal, send it a signed sample order, read the balance, spend 500 points:"
	@echo "      make simulate AMOUNT=650"
	@echo "      make balance"
	@echo "      make redeem"
	@echo
	$(DEV_ENV) && ($(VENV)/bin/python -m plugin.devtools.fake_shop --port $(FAKE_SHOP_PORT) --token shpat_demo_token & \
	  trap 'kill $$!' EXIT INT TERM; $(FLASK) run --port $(PORT))

## simulate: send the running demo app a signed orders/paid delivery
simulate: instance/dev.env
	$(DEV_ENV) && $(FLASK) loyalty simulate --url http://127.0.0.1:$(PORT) --amount $(AMOUNT)

balance: instance/dev.env
	$(DEV_ENV) && $(FLASK) loyalty balance demo-shop.myshopify.com 1001 && $(FLASK) loyalty history demo-shop.myshopify.com 1001

## redeem: spend 500 of customer 1001's points on the demo shop's "5.00 off" reward
redeem: instance/dev.env
	$(DEV_ENV) && $(FLASK) loyalty redeem demo-shop.myshopify.com 1001 5-off && \
	  $(FLASK) loyalty redemptions demo-shop.myshopify.com 1001

## test: every test on PostgreSQL, then on SQLite the tiers whose behaviour depends on the database, then the fuzz stage, then lint.
## Tiers (tests/conftest.py gives each test one from the fixtures it uses): unit (no database), db (the database,
## maybe Redis), http (the Flask test client), e2e (real rq workers, the fake shop, the app as processes), browser
## (Playwright in Debian's chromium). SQLite runs db and http: they go through SQL, where SQLite and PostgreSQL
## differ (locks, constraints, the widget's one-statement read); unit tests touch no database, and e2e and browser
## tests run the production shape (PostgreSQL, Redis, workers), so they run once, on PostgreSQL.
## Each run has its own PostgreSQL database and Redis keys; scripts/reaped.sh kills whatever a killed run left.
test: $(VENV)/.installed admin
	scripts/services.sh
	$(MAKE) --no-print-directory test-postgres test-sqlite fuzz lint

test-postgres: admin
	TEST_DATABASE_URL=$(PG_TEST_URL) scripts/reaped.sh $(VENV)/bin/pytest -m "not fuzz" $(PYTEST_ARGS)

test-sqlite: admin
	TEST_DATABASE_URL=sqlite scripts/reaped.sh $(VENV)/bin/pytest -m "(db or http) and not fuzz" $(PYTEST_ARGS)

## fuzz: generated hostile input, about a minute: schemathesis on the admin and support OpenAPI documents,
## hypothesis on the webhook parser, the inbox and the App Proxy verifier (FUZZ_RANDOM=1 new cases, FUZZ_SCALE=10 more)
fuzz: $(VENV)/.installed
	scripts/services.sh
	TEST_DATABASE_URL=$(PG_TEST_URL) scripts/reaped.sh $(VENV)/bin/pytest -m fuzz $(FUZZ_ARGS)

## lint: ruff, the architecture contracts (import-linter, [tool.importlinter] in pyproject.toml), Theme Check on
## the theme app extension, and `npm ci` of every committed package-lock.json
lint: ruff imports theme-check npm-locks

ruff:
	$(VENV)/bin/ruff check .

imports:
	$(VENV)/bin/lint-imports

npm-locks:
	scripts/npm-locks.sh

theme-check: npm-locks
	node scripts/theme-check.mjs storefront_widget/extension

## bench: intake and widget read against bare Flask, 20,000 orders end to end with the base rule and again with a
## realistic programme (rules, tiers, milestones, events), peak RSS, 1M members / 20M postings,
## a 200,000-row CSV import and a rule preview over 100,000 orders
## (writes docs/benchmarks.md and docs/benchmarks.json; BENCH_ARGS="--only intake,widget" to run a part)
bench: $(VENV)/.installed
	scripts/services.sh
	scripts/bench-tools.sh
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

## bench-widget: Lighthouse on the demo storefront with and without the widget (writes docs/widget-performance.md)
bench-widget: $(VENV)/.installed
	scripts/services.sh
	cd bench && npm ci --no-audit --no-fund
	$(VENV)/bin/python bench/lighthouse_widget.py

## chaos: 20,000 shuffled, repeated events while workers are SIGKILLed and the shop fails 20% of calls; checks
## every balance against an oracle (writes docs/reliability.md; CHAOS_ARGS="--seed 2" to vary)
chaos: $(VENV)/.installed
	scripts/services.sh
	$(VENV)/bin/python bench/chaos.py $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache $(ADMIN_UI)/node_modules plugin/static/admin-ui
