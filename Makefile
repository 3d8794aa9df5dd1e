.PHONY: demo test test-floors bench setup test-tools clean

demo:  ## real detector, real footage: profile, replay, report (needs python3-venv only)
	scripts/demo.sh

test:  ## ruff + mypy + pytest (the command CI runs); installs the test tools, no services
	scripts/test.sh

test-floors:  ## a throw-away venv at the lowest declared dependency versions, fast tests
	scripts/test-floors.sh

bench:  ## monitored loop vs bare onnxruntime loop, feature cost, peak RSS
	scripts/setup-venv.sh dev
	EDGEWATCH_ASSETS=$$(scripts/fetch-assets.sh | tail -n 1) .venv/bin/python bench/pipeline.py

setup:  ## .venv with the development packages
	scripts/setup-venv.sh dev

test-tools:  ## mosquitto, promtool, Alertmanager, openssl, systemd-analyze, chromium
	scripts/setup-test-tools.sh

clean:
	rm -rf out .venv assets build dist
