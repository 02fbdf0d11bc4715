#!/bin/sh
# Prints the CPython 3.11 that `make setup` builds .venv from (override: make PYTHON=...).
#
# The distribution's own python3.11 comes first: Debian, Ubuntu and Fedora build it with
# profile-guided and link-time optimization, which a default pyenv, asdf or source build
# leaves out. Pure-Python loops ran 12 - 33 % faster in it on the project's test machine;
# docs/libp2p.md ("the thirteenth round") has the measurements. Then whatever
# python3.11 comes first on PATH. An interpreter that cannot make a virtual environment
# (Debian's without the python3.11-venv package) is passed over. AXL_PYTHON_CANDIDATES
# replaces the list of candidates (the tests use it).
for candidate in ${AXL_PYTHON_CANDIDATES:-/usr/bin/python3.11 python3.11}; do
    if "$candidate" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        echo "$candidate"
        exit 0
    fi
done
echo python3.11
