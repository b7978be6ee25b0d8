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
# set-up time, not committed. The browser test drives Debian's Chromium (installed with apt if
# missing, as root or through sudo; or point CHROMIUM at another Chromium binary).
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
BROWSER_TIMEOUT ?= 600
LAB_TIMEOUT   ?= 300
APT_TIMEOUT   ?= 900

# One shell per recipe line with pipefail: the two test streams pipe their output through sed.
SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c

# Chapters executed at once for the book (each on one torch thread).
EXEC_JOBS   ?= 2
# Every step is one command, run under its time limit by tools/timed.sh, which prints
# "time: STEP N s" when it ends (benchmarks/ci_times.sh collects those lines).
TIMED       := bash tools/timed.sh
UNIT        = env CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest tests -q -p no:cacheprovider
NBVAL       = $(BIN)/python -m pytest chapters -q -p no:cacheprovider --nbval-lax --nbval-current-env \
              --nbval-cell-timeout=$(CELL_TIMEOUT)
EXECUTE     = $(BIN)/python tools/execute_chapters.py --timeout $(CELL_TIMEOUT)
JB_BUILD    = $(BIN)/jupyter-book build . --builder html -W -n --keep-going --all
CHECK_BOOK  = $(BIN)/python tools/check_book.py $(BOOK_HTML)
BROWSER     = $(BIN)/python tools/browser_check.py $(BOOK_HTML) --chromium $(CHROMIUM) --screenshots _build/screenshots
LAB_CHECK   = $(BIN)/python tools/lab_check.py --chromium $(CHROMIUM) --screenshot _build/screenshots/jupyterlab.png

.PHONY: book test tests-stream book-stream unit nbval execute book-check browser-check lab lab-check setup lock clean

# The book: the chapters are executed EXEC_JOBS at a time into the execution cache (keyed on each
# chapter's code and on the library: tools/execute_chapters.py), then Sphinx builds the pages
# from the cached outputs (-W -n: any warning fails the build).
book: setup
	$(TIMED) execute $(BOOK_TIMEOUT) $(EXECUTE) --jobs $(EXEC_JOBS)
	$(TIMED) book-build $(BOOK_TIMEOUT) $(JB_BUILD)
	@echo "The book is at $(BOOK_HTML)/index.html"

# Two streams at once, one per core, each a sequence of single-threaded steps:
#   tests: the unit tests, then nbval re-executing every chapter;
#   book:  the chapters executed for the book (or taken from the cache), the book built with
#          -W -n and checked, every page opened and every slider dragged in Chromium, then the
#          JupyterLab live-slider check (here rather than in the tests stream, which is the longer:
#          unit 142 s + nbval 279 s against 389 s, measured on the 2-core machine at 1613ce5).
# Each line of output is prefixed with its stream's name; each step prints its time.
test: setup $(CHROMIUM)
	$(MAKE) --no-print-directory -j2 tests-stream book-stream
	@echo "All tests passed: unit tests, nbval over every chapter, book build and check, browser check, JupyterLab live slider."

tests-stream: setup $(CHROMIUM)
	{ $(TIMED) unit $(UNIT_TIMEOUT) $(UNIT) && $(TIMED) nbval $(NBVAL_TIMEOUT) $(NBVAL); } 2>&1 | sed -u 's/^/[tests] /'

book-stream: setup $(CHROMIUM)
	{ $(TIMED) execute $(BOOK_TIMEOUT) $(EXECUTE) --jobs 1 && $(TIMED) book-build $(BOOK_TIMEOUT) $(JB_BUILD) && \
	  $(TIMED) book-check 300 $(CHECK_BOOK) && $(TIMED) browser-check $(BROWSER_TIMEOUT) $(BROWSER) && \
	  $(TIMED) lab-check $(LAB_TIMEOUT) $(LAB_CHECK); } \
	  2>&1 | sed -u 's/^/[book]  /'

# The steps one at a time. Chromium first for the unit tests: the browser checker's tests open pages in it.
unit: setup $(CHROMIUM)
	$(TIMED) unit $(UNIT_TIMEOUT) $(UNIT)

nbval: setup
	$(TIMED) nbval $(NBVAL_TIMEOUT) $(NBVAL)

execute: setup
	$(TIMED) execute $(BOOK_TIMEOUT) $(EXECUTE) --jobs $(EXEC_JOBS)

book-check: execute
	$(TIMED) book-build $(BOOK_TIMEOUT) $(JB_BUILD)
	$(TIMED) book-check 300 $(CHECK_BOOK)

# Every page of the built book in headless Chromium (part of `make test`, after book-check): no
# JavaScript error, images loaded with alt texts, math typeset, internal links, Colab buttons, and
# every kernel-free slider dragged. Screenshots go to _build/screenshots. Checks the book as last built.
browser-check: setup $(CHROMIUM)
	@test -f $(BOOK_HTML)/index.html || { echo "browser-check: no built book in $(BOOK_HTML); run 'make book' first" >&2; exit 1; }
	$(TIMED) browser-check $(BROWSER_TIMEOUT) $(BROWSER)

# A live ipywidgets slider in JupyterLab, dragged in headless Chromium (part of `make test`): the
# widget manager and ipywidgets agree, the figure redraws, no console error (tools/lab_check.py).
lab-check: setup $(CHROMIUM)
	$(TIMED) lab-check $(LAB_TIMEOUT) $(LAB_CHECK)

# Readers: JupyterLab on the chapters, with progress bars and the default mode (not the test settings).
lab: setup
	env -u TUTORLIB_MODE -u TUTORLIB_PROGRESS -u TUTORLIB_THREADS $(BIN)/jupyter lab chapters/ \
	    $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

setup: $(STAMP) $(MATHJAX)

$(MATHJAX):
	rm -rf .cache/mathjax && mkdir -p .cache/mathjax book/_static/mathjax
	cd .cache/mathjax && npm pack --silent mathjax@$(MATHJAX_VERSION)
	tar -xzf .cache/mathjax/mathjax-$(MATHJAX_VERSION).tgz -C book/_static/mathjax --strip-components=2 package/es5
	test -s $(MATHJAX)

# Debian's chromium package (CI: a fresh Debian machine with access to the package mirrors).
# As root directly; otherwise through sudo (without a password prompt when there is no terminal).
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "Chromium is missing at $(CHROMIUM) and there is no apt-get to install it:" \
	    "install Chromium and run make with CHROMIUM=/path/to/chromium" >&2; exit 1; }
	@if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	elif command -v sudo >/dev/null && [ -t 0 ]; then sudo="sudo"; \
	else echo "Chromium is missing at $(CHROMIUM); installing it needs root: run" \
	    "'sudo apt-get install chromium' (or make as root), or set CHROMIUM=/path/to/chromium" >&2; exit 1; fi; \
	echo "Installing Debian's chromium with apt-get$${sudo:+ (through $$sudo)}"; \
	timeout $(APT_TIMEOUT) $$sudo apt-get update -qq && \
	timeout $(APT_TIMEOUT) $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
	@test -x $(CHROMIUM) || { echo "apt-get installed chromium, but not at $(CHROMIUM): set CHROMIUM" >&2; exit 1; }

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
	rm -rf _build $(VENV) .cache book/_static/mathjax book/_figures
