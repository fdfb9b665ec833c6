# Shared set-up for scripts/run and scripts/test: a virtual environment and Debian packages.
# Sourced, not run. Installs only what is missing, so a second run starts at once.

PYTHON="${PYTHON:-python3}"

ensure_venv() {  # ensure_venv [extra]: .venv with the project (and an extra: test, embedded)
  local extra="${1:-}" spec="." stamp
  [ -n "$extra" ] && spec=".[$extra]"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "hcpform needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))." >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
      rm -rf .venv
      ensure_debian_packages python3-venv
      "$PYTHON" -m venv .venv
    fi
  fi
  # The exact versions of constraints.txt (scripts/lock makes it); a change to it or to
  # pyproject.toml changes the stamp, so the next run installs again.
  stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-${extra:-base}"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c constraints.txt -e "$spec"
    check_lock
    touch "$stamp"
  fi
}

check_lock() {  # every package in .venv is pinned in constraints.txt (fails under CI=true)
  local missing
  missing="$(.venv/bin/python - <<'PY'
import importlib.metadata as md
import re

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

with open("constraints.txt") as f:
    pinned = {norm(line.split("==")[0]) for line in f if "==" in line}
installed = {norm(d.metadata["Name"]) for d in md.distributions()}
print(" ".join(sorted(installed - pinned - {"hcpform", "pip", "setuptools", "wheel"})))
PY
)"
  [ -z "$missing" ] && return 0
  echo "constraints.txt does not pin: $missing (run scripts/lock)." >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
}

ensure_debian_packages() {  # ensure_debian_packages PKG...: apt-get install the missing ones, if we can
  local missing=() pkg sudo=""
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
      echo "Missing Debian packages: ${missing[*]} (install them with apt-get; continuing without)." >&2
      return 0
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing packages: ${missing[*]} (no apt-get here; install them by hand)." >&2
    return 0
  fi
  echo "Installing Debian packages: ${missing[*]}"
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null 2>&1
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  }
}
