"""Stages data -> rgen -> augment through the command line with the `llm` and `openai` backends."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_pipeline import run_cli

from conftest import SHARED_DATA, shared_file


def config_for(tmp, backend: str, extra: str) -> str:
    path = tmp / f"{backend}.toml"
    path.write_text(f"""
name = "b-{{kind}}"
run_dir = "{tmp / "run"}"
seed = 5
[data]
train = "{SHARED_DATA / "emotion" / "train.jsonl"}"
validation = "{tmp / "val.jsonl"}"
limit = 40
[rgen]
backend = "{backend}"
{extra}
""")
    rows = [
        json.loads(line)
        for line in (SHARED_DATA / "emotion" / "validation.jsonl").read_text().splitlines()[:10]
    ]
    (tmp / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def augmented(tmp) -> list[dict]:
    return [json.loads(line) for line in (tmp / "run" / "augmented" / "train.jsonl").read_text().splitlines()]


@pytest.fixture
def data_present():
    shared_file("emotion", "train.jsonl")
    shared_file("emotion", "validation.jsonl")


def test_llm_backend_with_a_tiny_random_llama(tmp_path, data_present):
    cose = shared_file("reasoning", "cose_train.jsonl")
    extra = f'[rgen.llm]\nbase = "scratch:micro"\ndata = "{cose}"\nlimit = 80\nepochs = 1\nbatch_size = 16\nmax_new_tokens = 12'
    config = config_for(tmp_path, "llm", extra)
    for stage in ("data", "rgen", "augment"):
        result = run_cli(stage, "--config", config)
        assert result.returncode == 0, result.stderr[-2000:]
    rows = augmented(tmp_path)
    assert len(rows) == 40 and all(isinstance(r["reasoning"], str) and r["reasoning"].strip() for r in rows)
    prov = json.loads((tmp_path / "run" / "rgen" / "provenance.json").read_text())
    assert prov["settings"]["backend"] == "llm"


class Completions(BaseHTTPRequestHandler):
    calls: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Completions.calls.append(body)
        text = body["messages"][-1]["content"]
        reply = {
            "choices": [{"message": {"role": "assistant", "content": f"because of {len(text)} characters"}}]
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_openai_backend_against_a_local_server(tmp_path, data_present):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Completions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        config = config_for(
            tmp_path, "openai", f'[rgen.openai]\nbase_url = "{url}"\nmodel = "m"\nconcurrency = 4'
        )
        for stage in ("data", "rgen", "augment"):
            result = run_cli(stage, "--config", config)
            assert result.returncode == 0, result.stderr[-2000:]
    finally:
        server.shutdown()
    rows = augmented(tmp_path)
    assert len(rows) == 40 and all(r["reasoning"].startswith("because of ") for r in rows)
    assert len(Completions.calls) == 50  # 40 train + 10 validation rows, each asked once
    assert all(c["model"] == "m" and c["temperature"] == 0 for c in Completions.calls)
