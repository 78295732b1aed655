# zhllama's developer interface. Every recipe sets up what it needs first, so each one works
# from a fresh clone with only Python, pip, Rust, cargo, uv and just installed.
set shell := ["bash", "-euo", "pipefail", "-c"]

py := justfile_directory() / ".venv/bin/python"
bin := justfile_directory() / ".venv/bin"

# list the recipes
default:
    @just --list

# create .venv and install every workspace package and dev tool (quick when already done);
# `--inexact` keeps llama.cpp's bindings once `just test` has installed them
setup:
    uv sync --locked --quiet --inexact

# setup, then build every Rust artifact in release: the zhllama-rs and zhllama-server binaries
# (target/release/) and the zhllama_rs wheel (dist/, one abi3 wheel; setup already installed it,
# and with it the venv's `zhllama-rs` and `zhllama-server` commands, which run the same code as
# the binaries through the extension).
build: setup
    # Until the wheel had it, this recipe copied the server binary into .venv/bin, which keeps
    # uv from writing the wheel's script there: replace such a leftover copy once.
    if [ -f {{bin}}/zhllama-server ] && [ "$(head -c 2 {{bin}}/zhllama-server)" != '#!' ]; then \
        rm {{bin}}/zhllama-server && uv sync --locked --quiet --inexact --reinstall-package zhllama-rs; fi
    cargo build --release --workspace --exclude zhllama-py --quiet
    uv build --wheel --package zhllama-rs --out-dir dist --quiet

# every check: lint, the Rust tests, then the Python tests against the built artifacts. The
# `llamacpp` group brings llama.cpp for the GGUF interop tests, compiled from its source package
# (several CPU-minutes). Offline first: uv then reuses the wheel it built before; online, an index
# that sends no cache validators makes uv fetch the source anew and compile it again.
test: build lint
    uv sync --locked --quiet --inexact --group llamacpp --offline 2>/dev/null || \
        uv sync --locked --quiet --inexact --group llamacpp
    cargo test --workspace --quiet
    {{bin}}/pytest

# the pipeline end to end, offline, on the built-in synthetic corpus
demo: build
    {{py}} tools/demo.py

# train a model: `just train size=42M`, `just train size=42M max_iters=200 batch_size=8`
train *args: setup
    {{bin}}/zhllama train {{args}}

# export a checkpoint: `just export runs/15M/ckpt.pt -o out/model.bin format=llama2c`
export *args: setup
    {{bin}}/zhllama export {{args}}

# every benchmark, or the areas named (`just bench engine train`), into bench/results.*:
# beside llama2.c and llama.cpp when ZH_REF_LLAMA2C / ZH_REF_LLAMA_CPP point at them (bench/README.md)
bench *areas: build
    {{py}} tools/bench.py {{areas}}

# ruff (format + check) for Python, rustfmt and clippy for Rust
lint: setup
    {{bin}}/ruff format --check --quiet .
    {{bin}}/ruff check --quiet .
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --quiet -- -D warnings

# reformat and autofix everything lint checks
fmt: setup
    {{bin}}/ruff format --quiet .
    {{bin}}/ruff check --fix --quiet .
    cargo fmt --all
