#!/usr/bin/env bash
# The project's files point only inside the repository: no documentation or script refers to a machine
# path of the development host (its shared notes) that a fresh clone does not have.
set -uo pipefail
cd "$(dirname "$0")/../.."
n=0
hits=$(git ls-files -z 2>/dev/null | xargs -0 grep -nE '/work/shared|\.\./shared/' -- 2>/dev/null | grep -v '^tests/cli/self-contained.sh:')
if [ -z "$(git ls-files 2>/dev/null | head -n1)" ]; then
	echo "ok 1 - project files point only inside the repository # skip not a git checkout"
elif [ -z "$hits" ]; then
	echo "ok 1 - project files point only inside the repository"
else
	echo "not ok 1 - project files point outside the repository:"
	sed 's/^/#   /' <<<"$hits" | head -n 10
fi
echo "1..1"
