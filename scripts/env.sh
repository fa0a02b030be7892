# Sourced by scripts/test and scripts/log-audit: choose the Python that ptcrun is installed into.
#
# An active virtualenv or conda environment is used as it is. A Python that refuses
# `pip install` outside a virtualenv (PEP 668: Debian's, Ubuntu's and Homebrew's) gets one in
# .venv, made on first use. Any other Python (pyenv's, a CI image's) is installed into
# directly. PYTHON names the interpreter to start from (default python3).

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
    echo "$python not found: install Python 3.11 or newer, or set PYTHON=/path/to/python3" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "ptcrun needs Python 3.11 or newer; $python is $("$python" -V 2>&1). Set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if "$python" -c '
import os, sys, sysconfig
in_env = sys.prefix != sys.base_prefix or os.environ.get("CONDA_PREFIX") == sys.prefix
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and not in_env else 1)'; then
    if [ ! -x .venv/bin/python ]; then
        echo "$python is managed by the system; making a virtualenv in .venv" >&2
        "$python" -m venv .venv || {
            echo "could not make .venv: install the venv module (Debian, Ubuntu: apt-get install python3-venv)" >&2
            exit 1
        }
    fi
    python="$PWD/.venv/bin/python"
fi
# Console scripts (pytest, mypy, ruff, lint-imports) are installed beside the interpreter.
PATH="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

install_ptcrun() {
    "$python" -m pip install --quiet --disable-pip-version-check -e "$1"
}
