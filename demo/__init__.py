"""The demo: a broker, the simulated two-house fleet and Home Assistant, all on 127.0.0.1.

`scripts/demo` runs it (`python -m demo` inside the provisioned environment); the browser test
in `tests/demo/` starts the same stack through `demo.stack.Stack`.
"""
