"""`python -m ftgate_trainer --check`: can this interpreter run the trainer here?

Prints one JSON object on stdout: the trainer's version, the Python version, the version
of torch, transformers and peft (null when missing, with the import error under
"errors"), and the CUDA devices torch sees. `gateway doctor` runs it on a compute node.

Exit status: 0 when torch, transformers, peft and the trainer's own modules import; 1
when they do not (every model, builtin:tiny included, is a Hugging Face model now).
"missing" lists the optional packages that do not import (bitsandbytes: 8/4-bit only)."""

import importlib
import json
import sys

from . import EXIT_FAILURE, EXIT_OK, __version__

REQUIRED = ("torch", "transformers", "peft")
OPTIONAL = ("bitsandbytes",)
TRAINER_MODULES = ("ftgate_trainer.train", "ftgate_trainer.checkpoint", "ftgate_trainer.data",
                   "ftgate_trainer.backend", "ftgate_trainer.dist")


def _version(name, errors):
    try:
        mod = importlib.import_module(name)
    except Exception as e:  # ImportError, or a broken install raising anything
        errors[name] = "%s: %s" % (type(e).__name__, e)
        return None
    return getattr(mod, "__version__", "unknown")


def _cuda(torch_ok, errors):
    if not torch_ok:
        return []
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as e:
        errors["cuda"] = "%s: %s" % (type(e).__name__, e)
        return []


def report():
    """Returns (report dict, exit status)."""
    errors = {}
    versions = {name: _version(name, errors) for name in REQUIRED + OPTIONAL}
    for name in TRAINER_MODULES:
        if versions["torch"] is not None:
            _version(name, errors)
    rep = {
        "trainer": __version__,
        "python": "%d.%d.%d" % sys.version_info[:3],
        "executable": sys.executable,
        **versions,
        "cuda_devices": _cuda(versions["torch"] is not None, errors),
        "missing": [n for n in OPTIONAL if versions[n] is None],
        "errors": errors,
    }
    fatal = any(versions[n] is None for n in REQUIRED) or any(n in errors for n in TRAINER_MODULES)
    rep["ok"] = not fatal
    return rep, (EXIT_FAILURE if fatal else EXIT_OK)


def main():
    rep, code = report()
    json.dump(rep, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return code
