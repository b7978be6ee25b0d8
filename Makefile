# The README's two commands:  `make book`  and  `make test`.
# Each one sets up (idempotently) a local virtual environment in .venv first:
# torch==2.13.0 (CPU wheel) first, then the committed lock file, then tutorlib itself.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(CURDIR)/$(VENV)/bin
STAMP       := $(VENV)/.tutorlib-installed
LOCK        := requirements-lock.txt
TORCH_PIN   := torch==2.13.0
BOOK_HTML   := _build/html
# MathJax is served from the book's own static files (no CDN): fetched from the npm registry at
# set-up time, not committed. The browser test drives Debian's Chromium (installed if missing).
MATHJAX_VERSION := 3.2.2
MATHJAX     := book/_static/mathjax/tex-chtml.js
CHROMIUM    ?= /usr/bin/chromium

# Quick mode on the embedded data, no progress bars in stored outputs, a predictable backend.
export TUTORLIB_MODE     := quick
export TUTORLIB_PROGRESS := 0
# One torch thread: the book's models are small, and on a shared 2-core machine two threads
# oversubscribe the cores (measured 30-40x slower per step under load, see benchmarks/RESULTS.md).
export TUTORLIB_THREADS  := 1
export PYTHONHASHSEED    := 0
export PATH              := $(BIN):$(PATH)

# Every step has a time limit, so a stalled machine fails loudly instead of hanging CI.
UNIT_TIMEOUT  ?= 900
NBVAL_TIMEOUT ?= 1500
BOOK_TIMEOUT  ?= 1500
CELL_TIMEOUT  ?= 600

.PHONY: book test unit nbval book-check browser-check setup lock clean

book: setup
	timeout $(BOOK_TIMEOUT) $(BIN)/jupyter-book build . --builder html -W -n --keep-going --all
	@echo "The book is at $(BOOK_HTML)/index.html"

test: setup unit nbval book-check
	@echo "All tests passed: unit tests, nbval over every chapter, book build."

unit: setup
	timeout $(UNIT_TIMEOUT) $(BIN)/python -m pytest tests -q -p no:cacheprovider

nbval: setup
	timeout $(NBVAL_TIMEOUT) $(BIN)/python -m pytest chapters -q -p no:cacheprovider \
	    --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT)

book-check: setup
	timeout $(BOOK_TIMEOUT) $(BIN)/jupyter-book build . --builder html -W -n --keep-going --all
	$(BIN)/python tools/check_book.py $(BOOK_HTML)

# Not yet part of `make test`: the theme's own scripts still raise two JavaScript errors on every
# page (sphinx-thebe declares THEBE_JS_URL twice; pydata-sphinx-theme logs an empty theme mode).
browser-check: setup $(CHROMIUM)
	timeout 600 $(BIN)/python tools/browser_check.py $(BOOK_HTML) --chromium $(CHROMIUM) --screenshots _build/screenshots

setup: $(STAMP) $(MATHJAX)

$(MATHJAX):
	rm -rf .cache/mathjax && mkdir -p .cache/mathjax book/_static/mathjax
	cd .cache/mathjax && npm pack --silent mathjax@$(MATHJAX_VERSION)
	tar -xzf .cache/mathjax/mathjax-$(MATHJAX_VERSION).tgz -C book/_static/mathjax --strip-components=2 package/es5
	test -s $(MATHJAX)

$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# Maintainers: refresh the lock file after changing pyproject.toml's dependencies.
lock: setup
	$(BIN)/python -m pip install -q -e '.[book,test]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^torch==' > $(LOCK)

clean:
	rm -rf _build $(VENV) .cache book/_static/mathjax
