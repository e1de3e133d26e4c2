#!/usr/bin/env bash
# Build the qbo-sandbox wheel, install it alone into a fresh virtualenv (PyPI dependencies only,
# no Django, no checkout on sys.path) and run the sandbox's own tests (tests/sandbox) against it.
# The tests are copied out of the checkout first, so `import qbo_sandbox` can only find the wheel.
# `make test-sandbox-wheel` (part of `make test`) runs this. Env: PYTHON (default python3),
# SANDBOX_TEST_WORKERS (pytest-xdist workers, default auto), KEEP=1 keeps the temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/qbo-sandbox-wheel.XXXXXX")
if [[ "${KEEP:-}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

"$python" -m venv "$work/venv"
pip="$work/venv/bin/pip"
# A stale build/ would put since-deleted modules into the wheel.
rm -rf "$root/sandbox-dist/build"
"$pip" wheel -q --no-deps "$root/sandbox-dist" -w "$work/dist" 2> "$work/build.log" || {
    cat "$work/build.log" >&2
    exit 1
}
rm -rf "$root/sandbox-dist/build"
wheel=$(ls "$work"/dist/qbo_sandbox-*.whl)
echo "built $(basename "$wheel")"
# playwright: tests/sandbox drives the consent page in Chromium when there is one (else it skips).
"$pip" install -q "$wheel[test]" pytest-xdist playwright

mkdir -p "$work/tests"
cp -r "$root/tests/sandbox" "$work/tests/sandbox"
find "$work/tests" -name __pycache__ -prune -exec rm -rf {} +
cat > "$work/tests/pytest.ini" <<'INI'
[pytest]
addopts = -p no:cacheprovider --strict-markers
markers =
    browser: drives Debian's Chromium through Playwright
    slow: takes more than a few seconds
INI
cd "$work/tests"
"$work/venv/bin/python" - <<'PY'
import qbo_sandbox

assert "site-packages" in qbo_sandbox.__file__, f"qbo_sandbox imported from {qbo_sandbox.__file__}, not the wheel"
print(f"qbo_sandbox {qbo_sandbox.__version__} from {qbo_sandbox.__file__}")
PY
"$work/venv/bin/qbo-sandbox" --help > /dev/null
"$work/venv/bin/python" -m pytest -q -n "${SANDBOX_TEST_WORKERS:-auto}" sandbox
