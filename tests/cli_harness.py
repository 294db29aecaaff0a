"""`hypood` command lines in child processes, fast: each one is forked from a warm interpreter.

Starting Python and importing torch takes seconds per command on the shared test machine; a table of
a hundred command lines would spend minutes on that alone. The server below imports the package once
and forks a fresh child per command line: a separate process with its own exit status, stdout and
stderr (files, not a terminal), running the same `hypood_ros.cli.main` as the `hypood` script.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, NamedTuple

SERVER = r"""
import importlib, json, os, sys, traceback
import hypood_ros.cli as cli
for name in sys.argv[1:]:
    importlib.import_module(name)
for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.chdir(job["cwd"])
        for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        try:
            code = cli.main(job["argv"])
        except SystemExit as exc:  # --help and --version exit through argparse
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
"""

#: Modules every pipeline command imports, loaded once before the children fork.
WARM = ["torch", "cv2", "hypood_ros.defaults", "hypood_ros.pipeline", "hypood_ros.runtimes", "hypood_ros.model",
        "hypood_ros.evaluation.evaluate", "hypood_ros.calibration", "hypood_ros.runtimes.export", "onnxruntime"]


class Result(NamedTuple):
    code: int
    stdout: str
    stderr: str


class CliServer:
    def __init__(self, scratch: Path, env=None) -> None:
        self.scratch = scratch
        self.count = 0
        self.lock = threading.Lock()
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, *WARM], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def run(self, argv: List[str], cwd: Path) -> Result:
        with self.lock:
            self.count += 1
            out, err = self.scratch / f"{self.count}.out", self.scratch / f"{self.count}.err"
            job = {"argv": [str(a) for a in argv], "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the command server stopped")
        return Result(json.loads(line)["code"], out.read_text(), err.read_text())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
