"""Push to a hub-compatible server on 127.0.0.1 with the real huggingface_hub client, then load
back through it with ``from_pretrained``. The token must never show up in output or files."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import pytest

TOKEN = "hf_testtoken_do_not_print_0123456789"


class FakeHub:
    """The endpoints huggingface_hub uses for create_repo, upload_folder and downloads."""

    def __init__(self):
        self.repos = {}  # (type, id) -> {branch or commit sha: {path: bytes}}
        self.heads = {}  # (type, id, branch) -> commit sha
        self.commits = 0
        self.requests = []
        self.auth_seen = set()

    def commit(self, key, branch, files):
        self.repos[key].setdefault(branch, {}).update(files)
        self.commits += 1
        sha = hashlib.sha1(f"{key}{branch}{self.commits}".encode()).hexdigest()
        self.repos[key][sha] = dict(self.repos[key][branch])  # a snapshot, resolvable by sha
        self.heads[(*key, branch)] = sha
        return sha

    def head(self, key, rev):
        return self.heads.get((*key, rev), rev if len(rev) == 40 else "0" * 40)


def make_handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, body=b"", headers=None, ctype="application/json"):
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _base(self):
            return f"http://{self.headers['Host']}"

        def _not_found(self, code="EntryNotFound"):
            self._send(404, {"error": code}, {"X-Error-Code": code})

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length)

        def _record(self):
            hub.requests.append((self.command, self.path))
            auth = self.headers.get("Authorization")
            if auth:
                hub.auth_seen.add(auth)

        @staticmethod
        def _repo(parts):
            kind = "model"
            if parts[0] in ("datasets", "spaces"):
                kind, parts = parts[0][:-1], parts[1:]
            return kind, parts

        def do_POST(self):
            self._record()
            path = urlparse(self.path).path
            body = self._body()
            if path == "/api/validate-yaml":
                return self._send(200, {"errors": [], "warnings": []})
            if path == "/api/repos/create":
                data = json.loads(body)
                repo_id = (
                    f"{data['organization']}/{data['name']}"
                    if data.get("organization")
                    else data["name"]
                )
                key = (data.get("type") or "model", repo_id)
                if key in hub.repos:
                    return self._send(409, {"error": "exists", "url": f"{self._base()}/{repo_id}"})
                hub.repos[key] = {"main": {}}
                return self._send(200, {"url": f"{self._base()}/{repo_id}", "name": repo_id})
            parts = path.strip("/").split("/")  # api, {type}s, org, name, verb, rev...
            kind = parts[1][:-1]
            repo_id = "/".join(parts[2:4])
            verb, rev = parts[4], unquote("/".join(parts[5:]))
            key = (kind, repo_id)
            if key not in hub.repos:
                return self._not_found("RepoNotFound")
            if verb == "branch":
                hub.repos[key].setdefault(rev, dict(hub.repos[key]["main"]))
                return self._send(200, {})
            if verb == "preupload":
                files = json.loads(body)["files"]
                return self._send(
                    200,
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                            for f in files
                        ]
                    },
                )
            if verb == "commit":
                files = {}
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        value = item["value"]
                        files[value["path"]] = base64.b64decode(value["content"])
                    elif item["key"] != "header":
                        return self._send(400, {"error": f"unsupported {item['key']}"})
                oid = hub.commit(key, rev, files)
                return self._send(
                    200,
                    {
                        "commitUrl": f"{self._base()}/{repo_id}/commit/{oid}",
                        "commitOid": oid,
                        "pullRequestUrl": None,
                    },
                )
            return self._not_found("Unknown")

        def _file(self):
            parts = unquote(urlparse(self.path).path).strip("/").split("/")
            if parts[0] == "api":
                return self._api(parts[1:])
            kind, parts = self._repo(parts)
            repo_id, verb, rev, filename = (
                "/".join(parts[:2]),
                parts[2],
                parts[3],
                "/".join(parts[4:]),
            )
            files = hub.repos.get((kind, repo_id), {}).get(rev)
            if verb != "resolve" or files is None:
                return self._not_found("RepoNotFound" if files is None else "Unknown")
            if filename not in files:
                return self._not_found("EntryNotFound")
            data = files[filename]
            etag = '"' + hashlib.sha1(data).hexdigest() + '"'
            commit = hub.head((kind, repo_id), rev)
            return self._send(
                200, data, {"ETag": etag, "X-Repo-Commit": commit}, ctype="application/octet-stream"
            )

        def _api(self, parts):
            kind = parts[0][:-1]
            repo_id = "/".join(parts[1:3])
            rest = parts[3:]
            branches = hub.repos.get((kind, repo_id))
            if branches is None:
                return self._not_found("RepoNotFound")
            rev = "main"
            if rest[:1] == ["revision"]:
                rev = rest[1]
            if rest[:1] == ["tree"]:
                rev = rest[1]
                prefix = "/".join(rest[2:])
                entries = [
                    {"type": "file", "path": p, "size": len(d), "oid": "b" * 40}
                    for p, d in branches.get(rev, {}).items()
                    if p.startswith(prefix)
                ]
                return self._send(200, entries)
            files = branches.get(rev, {})
            sha = hub.head((kind, repo_id), rev)
            return self._send(
                200,
                {
                    "id": repo_id,
                    "sha": sha,
                    "private": False,
                    "siblings": [{"rfilename": p} for p in files],
                },
            )

        do_GET = _file
        do_HEAD = _file

    return Handler


@pytest.fixture
def hub():
    state = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from semclip.training.hub import push_label_set, push_model
    from transformers import CLIPModel
    model_dir, labels_dir = sys.argv[1], sys.argv[2]
    print(push_model(model_dir, "alice/scorer", private=True, branch="v1", commit_message="first"))
    print(push_label_set(labels_dir, "alice/labels"))
    local = CLIPModel.from_pretrained(model_dir).state_dict()
    remote = CLIPModel.from_pretrained("alice/scorer", revision="v1").state_dict()
    assert local.keys() == remote.keys()
    assert all(torch.equal(local[k], remote[k]) for k in local)
    from huggingface_hub import hf_hub_download
    card = open(hf_hub_download("alice/labels", "README.md", repo_type="dataset")).read()
    assert "semclip/simulated" in card and "resume key" in card
    print("ROUND TRIP OK")
    """
)


@pytest.mark.slow
def test_push_and_load_back(hub, tiny_clip_dir, synthetic_dir, tmp_path):
    from semclip.labeling.config import LabelConfig
    from semclip.labeling.run import run_labeling

    state, endpoint = hub
    labels = tmp_path / "labels"
    run_labeling(
        LabelConfig.from_values(
            dataset=synthetic_dir,
            splits=["train"],
            evaluator="simulated",
            output_dir=str(labels),
            accelerator="cpu",
            progress=False,
            limit=6,
        )
    )
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    env.pop("TRANSFORMERS_OFFLINE", None)
    env.pop("HF_DATASETS_OFFLINE", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, tiny_clip_dir, str(labels)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "ROUND TRIP OK" in output
    assert TOKEN not in output
    assert f"Bearer {TOKEN}" in state.auth_seen  # the client did authenticate with it
    assert set(state.repos) == {("model", "alice/scorer"), ("dataset", "alice/labels")}
    pushed = state.repos[("model", "alice/scorer")]["v1"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(pushed)
    dataset_files = state.repos[("dataset", "alice/labels")]["main"]
    assert "labelset.json" in dataset_files and "README.md" in dataset_files
    assert any(p.endswith(".parquet") for p in dataset_files)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".yaml", ".txt"):
            assert TOKEN not in path.read_text(errors="ignore"), path
