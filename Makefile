# The two commands: `make up` runs the demo deployment, `make test` runs the checks.
# `make up PORT=8080` serves the demo on another port.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo
# Not quiet: uWSGI compiles for about a minute on a fresh machine, and pip shows it doing so.
PIP := $(BIN)/pip install --disable-pip-version-check
# uWSGI compiles its internal routing (response-route-if: the guide's gzip rules)
# only when the PCRE headers are there at build time.
ROUTING_CHECK := $(BIN)/uwsgi --help | grep -q -- --response-route-if

define install
	@command -v pcre2-config >/dev/null || command -v pcre-config >/dev/null || $(MAKE) --no-print-directory pcre
	$(PIP) -e '.$(1)'
	@$(ROUTING_CHECK) || $(PIP) --force-reinstall --no-cache-dir --no-deps uwsgi
	@$(ROUTING_CHECK) || { echo "uWSGI was built without routing: install the PCRE2 headers" >&2; exit 1; }
endef

.PHONY: up test lint bench chaos clean pcre test-tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(call install,)
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(call install,[test])
	touch $(VENV)/.installed $@

pcre:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq libpcre2-dev >/dev/null; \
	else \
		echo "uWSGI needs the PCRE2 headers: install libpcre2-dev (Debian/Ubuntu) or pcre2-devel (Fedora), then run make again" >&2; exit 1; \
	fi

$(DEMO)/deploy.ini: | $(VENV)/.installed
	$(BIN)/toolkit new $(DEMO)

up: $(VENV)/.installed $(DEMO)/deploy.ini
	@echo "toolkit is $(CURDIR)/$(BIN)/toolkit; to type \`toolkit\` in this shell: export PATH=\"$(CURDIR)/$(BIN):\$$PATH\""
	$(BIN)/toolkit up $(DEMO) $(if $(PORT),--set http_port=$(PORT))

lint: $(VENV)/.installed-test
	$(BIN)/ruff check toolkit tests bench
	$(BIN)/ruff format --check toolkit tests bench
	$(BIN)/mypy

test: lint test-tools
	$(BIN)/pytest

# What some tests drive for real, from Debian's packages (as root, with apt): chromium loads
# the status page; openssh-server runs the SSH hosts of the fleet releases. Elsewhere those
# tests say why they are skipped.
test-tools:
	@command -v chromium >/dev/null && test -x /usr/sbin/sshd || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium openssh-server >/dev/null; \
		else echo "no chromium or sshd: the browser and fleet tests will be skipped" >&2; fi; }

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.emperor

chaos: $(VENV)/.installed-test
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) $(DEMO)
