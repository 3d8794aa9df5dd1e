.PHONY: demo test bench lint setup clean

demo:  ## real detector, real footage: profile, replay, report
	scripts/demo.sh

test:  ## ruff + mypy + pytest (the command CI runs)
	scripts/test.sh

bench:  ## monitored loop vs bare onnxruntime loop, feature cost, peak RSS
	scripts/setup-venv.sh
	EDGEWATCH_ASSETS=$$(scripts/fetch-assets.sh | tail -n 1) .venv/bin/python bench/pipeline.py

setup:
	scripts/setup-venv.sh

clean:
	rm -rf out .venv assets
