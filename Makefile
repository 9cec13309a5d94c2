# Developer shortcuts; the README's two commands are `bash setup.sh demo` and `bash setup.sh test`.
.PHONY: setup demo test lint
setup:
	bash setup.sh
demo:
	bash setup.sh demo
test:
	bash setup.sh test
lint:
	.venv/bin/ruff check core tests && .venv/bin/mypy core/aerialseg
