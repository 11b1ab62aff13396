"""The llama.cpp CPU engine: a managed ``llama-server`` behind the same engine interface as :class:`BatchEngine`.

``secops-ai serve``, evals and agents submit :class:`GenRequest` rows here exactly as they do to the
transformers engine; each row becomes one streamed ``/completion`` call to a private ``llama-server``
(127.0.0.1, a free port, killed with us) that does the continuous batching in C++. What is sent is the
prompt's *token ids*, rendered by our own chat template and system-prompt policy, so llama.cpp decodes
exactly what the transformers engine would have been asked.

LoRA adapters are loaded once at start (``--lora ... --lora-init-without-apply``) and chosen per request
(the ``lora`` field), keyed like peft adapters. What llama.cpp cannot do goes to the transformers engine
kept alongside (``fallback``), with a logged reason: rows with a logits processor (token masks), adapters
added after start, and teacher-forced scoring (echo + prompt logprobs), which the service runs on the
transformers model itself.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops_ai.inference.engine import BatchEngine, GenRequest, QueueFullError

log = logging.getLogger(__name__)

_UINT32 = 2**32
_MAX_LINE = 2**20  # one SSE event of one token; anything near this is not llama-server talking


class LlamaServerError(RuntimeError):
    """``llama-server`` did not start or stopped answering."""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child before exec: SIGTERM it if we are killed (Linux)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process: a llama-server started
# from a short-lived thread (a request's worker, an agent run, a to_thread call) would be SIGTERMed under its
# callers. Every child is therefore forked from this one thread, which lives as long as the process.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="secops-llama-spawn")


class LlamaServer:
    """One ``llama-server`` subprocess on 127.0.0.1:<free port>; :meth:`stop` (or our exit) ends it."""

    def __init__(self, binary: Path, model: Path, *, loras: list[Path] | None = None, threads: int = 0,
                 parallel: int = 8, ctx_per_slot: int = 4096) -> None:
        self.binary, self.model, self.loras = binary, model, list(loras or [])
        self.threads = threads or os.cpu_count() or 2
        self.parallel, self.ctx_per_slot = parallel, ctx_per_slot
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(self.port),
               "-t", str(self.threads), "-np", str(self.parallel), "-c", str(self.ctx_per_slot * self.parallel),
               "--no-webui", "--no-slots"]
        for lora in self.loras:
            cmd += ["--lora", str(lora)]
        if self.loras:
            cmd.append("--lora-init-without-apply")  # applied per request, never globally
        return cmd

    def log_tail(self, chars: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read()[-chars:]

    def start(self, timeout: float = 120.0) -> None:
        import urllib.request

        self.port = _free_port()
        log.info("starting llama-server: %s", " ".join(self.command()))
        self.proc = _spawner.submit(subprocess.Popen, self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent).result()
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LlamaServerError(f"llama-server exited with {self.proc.returncode}:\n{self.log_tail()}")
            # urllib, not httpx: no log line per poll
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise LlamaServerError(f"llama-server not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL a hung child (it answers nothing) and reap it; :meth:`stop` then has nothing left to do."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class _RowState:
    """What one try of a row has received so far."""

    tokens: list[int] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # text received, not yet handed to the caller
    emitted: bool = False  # some text went to the caller: a retry would repeat it


class LlamaCppEngine:
    """Drop-in for :class:`BatchEngine` that decodes on ``llama-server``; ``fallback`` serves what it cannot.

    ``loras`` maps an engine adapter key (the peft key the service hands out) to its GGUF LoRA file.
    """

    kind = "llamacpp"
    # llama-server batches rows as they arrive over HTTP, and a row's logits depend on which rows share its
    # forward pass (kernels differ by batch size): reproducible rows must come one at a time (GenRequest).
    reproducible_chunks = False

    def __init__(self, fallback: BatchEngine, server: LlamaServer, loras: dict[str, Path], *,
                 on_queue_depth: Callable[[int], None] | None = None, stream_interval: float = 0.0) -> None:
        self.fallback = fallback
        self.server = server
        self.loras = dict(loras)
        self.lora_ids = {key: i for i, key in enumerate(loras)}
        server.loras = list(loras.values())
        self._rows_on: dict[int, int] = {}  # id(server) -> rows in flight on it
        self._retiring: list[LlamaServer] = []  # replaced servers, stopped when their last row ends
        self._swap_lock = threading.Lock()
        self.max_batch_size = server.parallel
        self.max_queue = fallback.max_queue
        self._on_queue_depth = on_queue_depth or (lambda _n: None)
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0  # rows submitted to llama.cpp and not finished
        self._open: dict[int, GenRequest] = {}  # those rows by id(): stop() ends the ones it cancels
        self._lock = threading.Lock()
        self._client: Any = None
        # rows submitted from an event loop (the API) stream on that loop: one wakeup per token instead of a
        # worker thread's read plus a hand-over to the loop, which on two cores slows llama.cpp's own threads
        self._sessions: dict[asyncio.AbstractEventLoop, Any] = {}
        self.stream_interval = stream_interval  # seconds between bursts of text for rows on a loop (0: per token)
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._warned: set[str] = set()
        # seconds without a byte from llama-server before a row gives up on it (a queued row waits for a slot)
        self.read_timeout = float(os.environ.get("SECOPS_LLAMACPP_READ_TIMEOUT", "600"))

    # -- what callers read from an engine ---------------------------------------------------------
    @property
    def model(self) -> Any:
        return self.fallback.model

    @model.setter
    def model(self, value: Any) -> None:
        self.fallback.model = value

    @property
    def tokenizer(self) -> Any:
        return self.fallback.tokenizer

    @property
    def model_lock(self) -> threading.Lock:
        return self.fallback.model_lock

    @property
    def eos_ids(self) -> list[int]:
        return self.fallback.eos_ids

    @property
    def vocab_size(self) -> int:
        return self.fallback.vocab_size

    @property
    def max_positions(self) -> int:
        return min(self.fallback.max_positions, self.server.ctx_per_slot)

    def _adapter_ctx(self, adapter: str | None):
        return self.fallback._adapter_ctx(adapter)

    @property
    def queue_depth(self) -> int:
        return max(0, self._pending - self.max_batch_size) + self.fallback.queue_depth

    @property
    def running(self) -> bool:
        return self._pool is not None and not self._stopping and self.server.proc is not None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        import httpx

        self.server.start()
        self.fallback.start()
        # one worker per row in flight: llama-server batches them; more would only queue inside it
        self._pool = ThreadPoolExecutor(max_workers=self.max_batch_size + self.max_queue,
                                        thread_name_prefix="secops-llamacpp")
        # a bounded read: a hung child (no byte for read_timeout seconds) fails its rows instead of blocking them
        self._client = httpx.Client(timeout=httpx.Timeout(None, connect=10, read=self.read_timeout),
                                    limits=httpx.Limits(max_connections=self.max_batch_size + self.max_queue))
        atexit.register(self.stop)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        self._stopping = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            cancelled = list(self._open.values())
        for req in cancelled:  # queued rows whose worker never runs: their callers would wait forever
            req.cancelled.set()
            _end(req, "error", "generation failed: the engine stopped (server is shutting down)")
        self.server.stop()
        for old in self._retiring:
            old.stop()
        if self._client is not None:
            self._client.close()
        self.fallback.stop()

    # -- submission -------------------------------------------------------------------------------
    def submit(self, req: GenRequest) -> None:
        self.submit_many([req])

    def submit_many(self, reqs: list[GenRequest], *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Queue every row of one request, or none (QueueFullError), as :meth:`BatchEngine.submit_many`.

        ``loop``: the running event loop this is called from; its rows then stream as tasks on it and emit
        on its thread (the caller's ``emit`` must accept both that thread and worker threads). The caller
        closes the connections they open with :meth:`close_loop` before that loop ends."""
        native = [r for r in reqs if self._native(r)]
        foreign = [r for r in reqs if not self._native(r)]
        for req in native:
            self.fallback._check(req)
        if self._stopping or self._pool is None:
            raise RuntimeError("the engine is stopped")
        with self._lock:
            waiting = max(0, self._pending - self.max_batch_size)
            if waiting + len(native) > self.max_queue:
                raise QueueFullError(f"{waiting} sequences are already waiting and this request needs "
                                     f"{len(reqs)}; at most {self.max_queue} may wait (SECOPS_MAX_QUEUE)")
            if foreign:
                self.fallback.submit_many(foreign)
            self._pending += len(native)
            self._open.update((id(r), r) for r in native)
            self._on_queue_depth(max(0, self._pending - self.max_batch_size))
        for req in native:
            if loop is not None:
                task = loop.create_task(self._run_async(req))
                self._tasks.add(task)  # the loop keeps only weak references to its tasks
                task.add_done_callback(self._tasks.discard)
            else:
                self._pool.submit(self._run, req)

    def _native(self, req: GenRequest) -> bool:
        reason = None
        if req.logits_processor is not None and req.json_schema is None:
            reason = "a token mask (constrained decoding) needs the transformers engine"
        elif req.adapter is not None and req.adapter not in self.lora_ids:
            reason = f"adapter {req.adapter} has no GGUF LoRA (its conversion failed: see the log above)"
        if reason is None:
            return True
        if reason not in self._warned:  # once per reason: never a silent change of engine
            self._warned.add(reason)
            log.warning("llama.cpp engine: %s; such rows run on the transformers engine", reason)
        return False

    def add_adapter(self, key: str, path: Path, base_dir: Path) -> None:
        """Serve one more adapter: convert it, start a llama-server with every LoRA, switch new rows to it; the
        old server finishes its rows and then stops (no request is cut off)."""
        from secops_ai.inference.gguf import adapter_gguf

        gguf = adapter_gguf(path, base_dir)
        with self._swap_lock:
            if key in self.lora_ids:
                return
            loras = {**self.loras, key: gguf}
            old = self.server
            new = LlamaServer(old.binary, old.model, loras=list(loras.values()), threads=old.threads,
                              parallel=old.parallel, ctx_per_slot=old.ctx_per_slot)
            new.start()
            with self._lock:
                self.server, self.loras = new, loras
                self.lora_ids = {k: i for i, k in enumerate(loras)}
                idle = self._rows_on.get(id(old), 0) == 0
                if not idle:
                    self._retiring.append(old)
            if idle:
                old.stop()
            log.info("llama.cpp engine: adapter %s added (%d LoRA adapters)", path.name, len(loras))

    def _revive(self) -> None:
        """A llama-server that died (killed, out of memory) is replaced before the next row runs on it."""
        with self._swap_lock:
            old = self.server
            if self._stopping or (old.proc is not None and old.proc.poll() is None):
                return
            log.error("llama-server stopped (exit %s); starting a new one:\n%s",
                      old.proc.returncode if old.proc else None, old.log_tail(800))
            old.stop()
            new = LlamaServer(old.binary, old.model, loras=list(self.loras.values()), threads=old.threads,
                              parallel=old.parallel, ctx_per_slot=old.ctx_per_slot)
            new.start()
            with self._lock:
                self.server = new

    def _body(self, req: GenRequest, lora_ids: dict[str, int]) -> dict[str, Any]:
        p = req.params
        budget = max(1, min(p.max_tokens, self.max_positions - len(req.prompt_ids)))
        body: dict[str, Any] = {
            "prompt": req.prompt_ids, "n_predict": budget, "stream": True, "return_tokens": True,
            "cache_prompt": True, "temperature": p.temperature, "top_p": p.top_p,
            # exactly our sampling: temperature, then nucleus; no top-k / min-p / penalties of llama.cpp's own
            "top_k": 0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0, "samplers": ["temperature", "top_p"],
            "stop": list(p.stop), "lora": [{"id": i, "scale": 1.0 if key == req.adapter else 0.0}
                                           for key, i in lora_ids.items()]}
        if req.json_schema is not None:  # llama.cpp turns the schema into a grammar
            body["json_schema"] = req.json_schema
        if req.reproducible:  # one slot, and a prompt cache only from the row before with this very prompt
            body["id_slot"], body["cache_prompt"] = 0, req.reuse_prompt
        if p.seed is not None:  # llama.cpp seeds are 32-bit and 0xFFFFFFFF means "random"
            body["seed"] = min(p.seed % _UINT32, _UINT32 - 2)
        return body

    def _run(self, req: GenRequest) -> None:
        """Decode one row on a worker thread; it always ends (done or an error event), whatever the child does.
        A child that died or hung before this row emitted anything is replaced and the row retried once."""
        try:
            for attempt in range(2):
                if not self._attempt(req, last=attempt == 1):
                    return
        except Exception as exc:  # never a row left without its end: its caller would wait forever
            log.exception("llama.cpp row failed")
            _end(req, "error", f"generation failed: {type(exc).__name__}: {exc}")
        finally:
            self._closed(req)

    async def _run_async(self, req: GenRequest) -> None:
        """:meth:`_run` as a task on the caller's event loop; the rare blocking steps (restarting a dead child,
        probing a silent one) run in a thread."""
        try:
            for attempt in range(2):
                if not await self._attempt_async(req, last=attempt == 1):
                    return
        except asyncio.CancelledError:  # the loop is shutting down
            _end(req, "error", "generation failed: the engine stopped (server is shutting down)")
            raise
        except Exception as exc:
            log.exception("llama.cpp row failed")
            _end(req, "error", f"generation failed: {type(exc).__name__}: {exc}")
        finally:
            self._closed(req)

    def _closed(self, req: GenRequest) -> None:
        with self._lock:
            self._pending -= 1
            self._open.pop(id(req), None)
            self._on_queue_depth(max(0, self._pending - self.max_batch_size))

    def _acquire(self) -> tuple[LlamaServer, dict[str, int]]:
        """The server (and its LoRA numbering) a row runs on, even if a swap happens meanwhile."""
        with self._lock:
            server, lora_ids = self.server, self.lora_ids
            self._rows_on[id(server)] = self._rows_on.get(id(server), 0) + 1
        return server, lora_ids

    def _release(self, server: LlamaServer) -> list[LlamaServer]:
        """Count the row off ``server``; returns the replaced servers whose last row this was (to stop)."""
        with self._lock:
            self._rows_on[id(server)] -= 1
            done = [old for old in self._retiring if self._rows_on.get(id(old), 0) == 0]
            self._retiring = [old for old in self._retiring if old not in done]
        return done

    def _dead(self) -> bool:
        return self.server.proc is None or self.server.proc.poll() is not None  # poll() also reaps a zombie

    def _try_revive(self) -> None:
        try:
            self._revive()
        except Exception as exc:  # a binary gone, a port taken: this row fails below, the next tries again
            log.error("llama-server could not be restarted: %s", exc)

    def _attempt(self, req: GenRequest, *, last: bool) -> bool:
        """One try on the current llama-server; True when the row should be retried on a fresh one."""
        if self._dead():
            self._try_revive()
        server, lora_ids = self._acquire()
        row = _RowState()
        try:
            if req.cancelled.is_set():
                self._finish(req, "cancelled", row.tokens, None)
                return False
            with self._client.stream("POST", f"{server.url}/completion", json=self._body(req, lora_ids)) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise LlamaServerError(f"llama-server answered {resp.status_code}: {resp.text[:300]}")
                for line in resp.iter_lines():
                    if self._feed(req, line, row):
                        return False
                    self._flush(req, row)
            raise LlamaServerError("llama-server closed the stream before the end")
        except Exception as exc:
            import httpx

            return self._failed(req, server, exc, row, last=last, timed_out=isinstance(exc, httpx.ReadTimeout),
                                transport=isinstance(exc, httpx.TransportError))
        finally:
            for old in self._release(server):
                old.stop()

    async def _attempt_async(self, req: GenRequest, *, last: bool) -> bool:
        """:meth:`_attempt` on the event loop, reading the stream with an aiohttp session of that loop (asyncio
        native: httpx's async path costs an anyio cancel scope per read, a third of our CPU per token)."""
        import aiohttp

        if self._dead():
            await asyncio.to_thread(self._try_revive)
        server, lora_ids = self._acquire()
        row = _RowState()
        try:
            if req.cancelled.is_set():
                self._finish(req, "cancelled", row.tokens, None)
                return False
            session = self._session()
            async with session.post(f"{server.url}/completion", json=self._body(req, lora_ids)) as resp:
                if resp.status != 200:
                    text = await resp.text(errors="replace")
                    raise LlamaServerError(f"llama-server answered {resp.status}: {text[:300]}")
                carry, loop = b"", asyncio.get_running_loop()
                flushed = loop.time()
                while data := await resp.content.readany():  # whatever has arrived: one or more SSE lines
                    *lines, carry = (carry + data).split(b"\n")
                    if len(carry) > _MAX_LINE:
                        raise LlamaServerError(f"llama-server sent a line over {_MAX_LINE} bytes")
                    for raw in lines:
                        if self._feed(req, raw.decode("utf-8", "replace").rstrip("\r"), row):
                            return False
                    # the first text goes out at once, the rest in bursts; the end (in _feed) always at once
                    if not row.emitted or loop.time() - flushed >= self.stream_interval:
                        self._flush(req, row)
                        flushed = loop.time()
            raise LlamaServerError("llama-server closed the stream before the end")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            timed_out = isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError))
            return await asyncio.to_thread(self._failed, req, server, exc, row, last=last, timed_out=timed_out,
                                           transport=timed_out or isinstance(exc, aiohttp.ClientError))
        finally:
            done = self._release(server)
            if done:
                await asyncio.to_thread(lambda: [old.stop() for old in done])

    async def close_loop(self) -> None:
        """Close the connections rows from the running loop opened (call before that loop ends)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    def _session(self) -> Any:
        """This loop's aiohttp session (its connections belong to the loop that opened them)."""
        import aiohttp

        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None:
            self._sessions = {lp: c for lp, c in self._sessions.items() if not lp.is_closed()}
            # a bounded read: a hung child (no byte for read_timeout seconds) fails its rows instead of blocking
            session = self._sessions[loop] = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=self.read_timeout),
                # llama-server (cpp-httplib) drops an idle keep-alive connection after 5 s; reusing one it dropped
                # fails the write, so ours are let go sooner
                connector=aiohttp.TCPConnector(limit=self.max_batch_size + self.max_queue, keepalive_timeout=2),
                read_bufsize=2**18)
        return session

    def _feed(self, req: GenRequest, line: str, row: _RowState) -> bool:
        """One line of llama-server's SSE stream; True when the row has ended (finished or cancelled)."""
        if req.cancelled.is_set():  # closing the stream makes llama-server free the slot
            self._finish(req, "cancelled", row.tokens, None)
            return True
        if not line.startswith("data: "):
            return False
        event = json.loads(line[6:])
        if "error" in event:
            raise LlamaServerError(str(event["error"]))
        row.tokens.extend(event.get("tokens") or [])
        if event.get("content"):
            row.pending.append(event["content"])
        if not event.get("stop"):
            return False
        self._flush(req, row)
        kind = event.get("stop_type")
        eos = None
        if kind == "eos" and row.tokens and row.tokens[-1] in self.eos_ids:
            eos = row.tokens.pop()
        elif kind == "eos":
            eos = self.eos_ids[0]
        self._finish(req, "length" if kind == "limit" else "stop", row.tokens, eos)
        return True

    @staticmethod
    def _flush(req: GenRequest, row: _RowState) -> None:
        """Hand the text received so far to the caller as one delta."""
        if row.pending:
            text = "".join(row.pending)
            row.pending.clear()
            row.emitted = True
            _emit(req, "delta", text)

    def _failed(self, req: GenRequest, server: LlamaServer, exc: Exception, row: _RowState, *, last: bool,
                timed_out: bool, transport: bool) -> bool:
        """Decide what a failed try means (may block: probes and waits on the child); True to retry the row.

        ``timed_out``: no byte for read_timeout seconds; ``transport``: the connection failed (either client's
        error types, classified by the caller)."""
        err: Exception = exc
        if timed_out and not self._answers(server):
            err = LlamaServerError(f"llama-server stopped answering for {self.read_timeout:.0f}s")
            server.kill()  # hung: the next row replaces it
        proc = server.proc
        if proc is not None and transport:  # its socket closes just before it exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        dead = proc is None or proc.poll() is not None
        if self._stopping:
            err = RuntimeError("server is shutting down")
        elif (dead or timed_out or transport) and not row.emitted and not last \
                and not req.cancelled.is_set():  # a dropped connection too: nothing reached the caller yet
            log.warning("llama-server failed under a row (%s: %s); retrying it once", type(exc).__name__, exc)
            return True
        elif dead:
            code = proc.returncode if proc is not None else None
            err = LlamaServerError(f"llama-server died (exit {code}) during generation")
        log.warning("llama.cpp row failed: %s", err)
        _end(req, "error", f"generation failed: {type(err).__name__}: {err}")
        return False

    def _answers(self, server: LlamaServer) -> bool:
        with contextlib.suppress(Exception):
            return self._client.get(f"{server.url}/health", timeout=10).status_code == 200
        return False

    @staticmethod
    def _finish(req: GenRequest, reason: str, tokens: list[int], eos: int | None) -> None:
        _end(req, "done", {"finish_reason": reason, "completion_tokens": len(tokens), "token_ids": list(tokens),
                           "eos_token": eos})


def _emit(req: GenRequest, kind: str, payload: Any) -> None:
    try:
        req.emit(kind, payload)
    except Exception as exc:  # a gone receiver (closed event loop) cancels its row
        log.warning("dropping a %s event for a gone receiver: %s", kind, exc)
        req.cancelled.set()


def _end(req: GenRequest, kind: str, payload: Any) -> None:
    if req.ended:
        return
    req.ended = True
    _emit(req, kind, payload)


if sys.platform != "linux":  # PR_SET_PDEATHSIG is Linux-only; elsewhere atexit alone stops the child
    _die_with_parent = None  # type: ignore[assignment]
