.PHONY: demo test test-floors bench setup test-tools clean

demo:  ## real detector, real footage: profile, replay, report (needs python3-venv only)
	scripts/demo.sh

test:  ## ruff + mypy + pytest (the command CI runs); installs the test tools, no services
	scripts/test.sh

test-floors:  ## a throw-away venv at the lowest declared dependency versions, fast tests
	scripts/test-floors.sh

bench:  ## monitored loop vs bare onnxruntime loop (SSDLite, then the faster CenterFace)
	scripts/setup-venv.sh dev
	assets=$$(scripts/fetch-assets.sh | tail -n 1) && \
	EDGEWATCH_ASSETS=$$assets .venv/bin/python bench/pipeline.py && \
	EDGEWATCH_ASSETS=$$assets .venv/bin/python bench/pipeline.py --model centerface --repeats 15

setup:  ## .venv with the development packages
	scripts/setup-venv.sh dev

test-tools:  ## mosquitto, promtool, Alertmanager, openssl, systemd-analyze, chromium
	scripts/setup-test-tools.sh

clean:
	rm -rf out .venv assets build dist
