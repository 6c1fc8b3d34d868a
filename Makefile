# Two commands on a fresh machine: `make book` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
JB     := $(BIN)/jupyter-book build --all -W -n --keep-going .

.PHONY: install data book test test-quick verify clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes; a venv that lost its stamp is reused.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[book,test]'
	@touch $@

# FashionMNIST: Debian's package where apt and root are available, else the official files.
data: $(STAMP)
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$$(id -u)" = 0 ] \
	    && command -v apt-get >/dev/null; then \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q dataset-fashion-mnist >/dev/null)) || true; \
	fi
	$(BIN)/pcbp fetch-data fashion-mnist

book: data
	$(JB)
	@echo "open _build/html/index.html"

test: data
	PCBP_QUICK=1 $(BIN)/python -m pytest
	PCBP_QUICK=1 $(JB)

verify: $(STAMP)
	$(BIN)/pcbp verify

clean:
	rm -rf _build .pytest_cache .hypothesis
