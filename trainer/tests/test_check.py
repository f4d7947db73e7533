"""`python -m ftgate_trainer --check`, the import probe `gateway doctor` runs on a node."""

import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*pre):
    env = dict(os.environ, PYTHONPATH=HERE)
    code = "import sys\n%s\nfrom ftgate_trainer.cli import main\nsys.exit(main(['--check']))" % "\n".join(pre)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, json.loads(p.stdout)


def test_check_reports_the_versions_this_interpreter_imports():
    rc, rep = run()
    assert rc == 0, rep
    assert rep["ok"] is True
    assert rep["torch"] == torch.__version__
    assert rep["executable"] == sys.executable
    import peft
    import transformers
    assert rep["transformers"] == transformers.__version__ and rep["peft"] == peft.__version__
    assert (rep["bitsandbytes"] is None) == ("bitsandbytes" in rep["missing"])
    assert isinstance(rep["cuda_devices"], list)


def test_check_fails_without_torch():
    # sys.modules[name] = None makes `import name` raise ImportError.
    rc, rep = run("sys.modules['torch'] = None")
    assert rc == 1
    assert rep["ok"] is False
    assert rep["torch"] is None
    assert "torch" in rep["errors"]


def test_check_fails_without_transformers():
    rc, rep = run("sys.modules['transformers'] = None")
    assert rc == 1 and rep["ok"] is False and "transformers" in rep["errors"]


def test_check_is_only_the_exact_flag():
    # --check with other arguments is not the probe: argparse refuses it.
    p = subprocess.run([sys.executable, "-m", "ftgate_trainer", "--check", "--job-dir", "/nonexistent"],
                       env=dict(os.environ, PYTHONPATH=HERE), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
