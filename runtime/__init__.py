"""Process wiring: which processes a deployment runs (topology), the config they get from the environment (config),
and the commands that migrate storage (`python -m runtime.migrate`), run one process (`python -m runtime.serve NAME`)
and run them all (`python -m runtime.launch`, i.e. `make run`). It imports the services and the gateway; nothing
imports it but the commands, the tests and the benchmarks."""
