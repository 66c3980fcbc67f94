"""The repository paths every suite uses, defined once (CARGO_TARGET_DIR honoured)."""

import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# cargo's output directory: $CARGO_TARGET_DIR (relative to the repository, as cargo reads it), else target/.
TARGET = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
CLI = os.path.join(TARGET, "debug", "llm-cost")
FIXTURES = os.path.join(ROOT, "fixtures", "recordings")
SUPPORT = os.path.join(ROOT, "tests", "support")
# scripts/build-plugin: the shipped, wasm-opt'ed filter.
WASM = os.path.join(ROOT, "dist", "llm_cost_plugin.wasm")
# The same filter built with `--features estimate` (tiktoken) by `scripts/build-plugin --estimate`.
WASM_ESTIMATE = os.path.join(ROOT, "dist", "llm_cost_plugin-estimate.wasm")
