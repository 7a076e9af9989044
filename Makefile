# Two commands for a fresh machine: `make demo` and `make test` (`make docs`
# builds the documentation).
# Both create .venv with a Python >= 3.12 found on this machine and reinstall
# the package whenever pyproject.toml changes.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Override with `make PYTHON=/path/to/python3.12 test`.
PYTHON ?=

.PHONY: demo test docs lint clean-venv

# Print the first interpreter >= 3.12: $PYTHON, then python3.12, 3.13, ... on
# PATH, then pyenv-managed versions, oldest suitable first (3.12 is the version
# tested most; the pyenv shims need PYENV_VERSION, so their real binaries are
# tried directly).
define FIND_PYTHON
ok() { "$$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }; \
for c in $(PYTHON) python3.12 python3.13 python3.14 python3 python; do \
  p=$$(command -v "$$c" 2>/dev/null) || continue; \
  if ok "$$p"; then echo "$$p"; exit 0; fi; \
done; \
root=$$(pyenv root 2>/dev/null || echo "$$HOME/.pyenv"); \
for p in $$(ls -d "$$root"/versions/3.*/bin/python 2>/dev/null | sort -V); do \
  if ok "$$p"; then echo "$$p"; exit 0; fi; \
done; \
exit 1
endef

$(PY):
	@py=$$( $(FIND_PYTHON) ) || { \
	  echo "error: torchgeo-decur needs Python >= 3.12 (TorchGeo 0.10 does) and none was found." >&2; \
	  echo "       Tried \$$PYTHON, python3.12..python3.14, python3 on PATH and pyenv versions." >&2; \
	  echo "       Install one (e.g. 'pyenv install 3.12') or run 'make PYTHON=/path/to/python3.12 ...'." >&2; \
	  exit 1; }; \
	echo "Creating $(VENV) with $$py ($$($$py --version))"; \
	"$$py" -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/torchgeo-decur demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q --durations=10

# HTML into docs/_build/html; warnings are errors, every reference is checked.
docs: $(STAMP)
	$(PY) -m sphinx -b html -W --keep-going -n docs docs/_build/html
	@echo "Documentation: docs/_build/html/index.html"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
